"""
The processes of a run: joining torchrun's process group, what every rank agrees on (a check that
passed everywhere, a stop on a signal), with the host (a gloo group) carrying the agreement so the
GPU never waits for it.
"""

import os
import signal
from types import SimpleNamespace

import torch
import torch.distributed as dist
from torch.distributed.constants import default_pg_timeout

from training import sharding
from training.errors import UserError


def init_process_group(backend, rank, world_size):
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        dist.init_process_group(backend=backend)
        return
    # torchrun's agents keep one store across restarts, and a restarted group finds its peers under
    # the same keys, so a rank can read the address of a rank that died and fail to connect
    # (pytorch/pytorch#135712). A prefix per restart, as torch used before it shared the store,
    # keeps the attempts apart on one node. Across nodes it cannot: each agent counts only its own
    # restarts (a node whose workers restart because another node's failed does not count it), so
    # the nodes would look for each other under different prefixes, and wait forever.
    nodes = int(os.environ.get("GROUP_WORLD_SIZE", 1))
    if nodes > 1 and int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", 0)) > 0:
        raise UserError(f"torchrun over {nodes} nodes with --max-restarts shares one store between restarts that it "
                        "counts per node, so a restarted group could not find its peers; start torchrun on every "
                        "node with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in its environment (docs/gpus.md)")
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world_size,
                          is_master=False, timeout=default_pg_timeout)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    dist.init_process_group(backend, store=dist.PrefixStore(f"attempt_{attempt}/", store), rank=rank,
                            world_size=world_size)


def check_cuda_graphs(cfg, device, world_size):
    """CUDA graphs (compile_mode='reduce-overhead') replay one micro-step's graph: with several
    micro-steps per rank, accumulating gradients under them can give wrong gradients
    (pytorch/pytorch#169545), so such a run is refused."""
    per_rank = cfg.gradient_accumulation_steps // world_size
    if cfg.compile and cfg.compile_mode == "reduce-overhead" and device.type == "cuda" and per_rank > 1:
        raise UserError(f"compile_mode='reduce-overhead' (CUDA graphs) with {per_rank} micro-steps per rank: gradient "
                        "accumulation under CUDA graphs can give wrong gradients (pytorch/pytorch#169545); use "
                        f"gradient_accumulation_steps={world_size} (one micro-step per rank, with a larger batch_size) "
                        "or compile_mode='default'")


def setup_distributed(cfg, device):
    """Join the process group when launched by torchrun; return rank facts. Each rank of a CUDA
    run takes the GPU of its local rank (device.name becomes cuda:LOCAL_RANK)."""
    if cfg.backend == "nccl" and device.type != "cuda":
        raise UserError(f"backend='nccl' needs CUDA but device={cfg.device!r}; use --backend=gloo or auto")
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if cfg.gradient_accumulation_steps % world_size:
        raise UserError(
            f"gradient_accumulation_steps={cfg.gradient_accumulation_steps} is not divisible by the "
            f"world size {world_size}; use a multiple of {world_size}"
        )
    check_cuda_graphs(cfg, device, world_size)
    ddp = "RANK" in os.environ and not cfg.dry_run
    if cfg.fsdp and not cfg.dry_run and not ddp:
        raise UserError("fsdp=True shards the model over the ranks of torchrun; launch with torchrun "
                        "(e.g. torchrun --standalone --nproc_per_node=8 train.py ...), or leave fsdp off")
    if cfg.fsdp and device.dtype not in sharding.FSDP_DTYPES:
        raise UserError(f"fsdp=True works with dtype float32 or bfloat16, not {device.dtype!r} (fp16's GradScaler "
                        "cannot unscale sharded gradients); use --dtype=bfloat16")
    rank, local_rank = int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
    host = None  # a gloo group for what the ranks agree on between iterations, without the GPU
    if ddp:
        backend = cfg.backend if cfg.backend != "auto" else ("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            device.name = f"cuda:{local_rank}"
            torch.cuda.set_device(device.name)
        init_process_group(backend, rank, world_size)
        host = dist.new_group(backend="gloo") if backend != "gloo" else dist.group.WORLD
    return SimpleNamespace(ddp=ddp, rank=rank, world_size=world_size, master=rank == 0, host=host)


def all_ranks(ranks, ok):
    """Whether ok holds on every rank (True without torchrun): a collective on the host group."""
    if not ranks.ddp:
        return ok
    flag = torch.tensor([int(ok)])
    dist.all_reduce(flag, op=dist.ReduceOp.MIN, group=ranks.host)
    return bool(flag.item())


def on_rank0(ranks, fn, what):
    """fn() on rank 0 alone, and every rank learns whether it worked: its result on rank 0 (None on
    the others), or on every rank a UserError, rank 0's own or one saying it could not `what`. No
    rank goes on alone to a collective that the others have left."""
    result, failed = None, None
    if ranks.master:
        try:
            result = fn()
        except UserError as e:
            failed = e
    if not all_ranks(ranks, failed is None):
        raise failed or UserError(f"rank 0 could not {what} (its error says why)")
    return result


class StopRequest:
    """SIGINT/SIGTERM ask the loop to finish the current step, checkpoint, and exit. The handler only
    records the signal (`received`); what the ranks agree to stop on is `signum`, a separate field,
    so a signal that arrives while the ranks combine theirs is never overwritten: it counts at the
    next agreement. As a context manager (sweep.py), the previous handlers come back on leaving."""

    def __init__(self):
        self.received = self.signum = 0
        self.pending = None  # an agreement started at the last iteration: (async work, its tensor)
        self.previous = {sig: signal.signal(sig, self.handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def handle(self, signum, frame):
        self.received = signum

    def agreed(self, ranks):
        """The signal to stop on now, or 0; every rank stops at the same iteration. Under torchrun the
        ranks' signals are combined on the host (a gloo group, so the GPU never waits for it): the
        all-reduce started at one iteration is read at the next, where it has long finished, so a
        stop takes effect one iteration after the signal and agreeing costs no wait."""
        if not ranks.ddp:
            self.signum = self.received
            return self.signum
        if self.pending is not None:
            work, flag = self.pending
            work.wait()
            self.signum = int(flag.item())
            if self.signum:
                return self.signum
        flag = torch.tensor([self.received])
        self.pending = (dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=ranks.host, async_op=True), flag)
        return 0
