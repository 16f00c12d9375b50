"""
What the scripts share about running a model: the device and its precision, compilation, torchrun's
process group, the data and its batches, and stopping on a signal. The scripts and training.py import
it; it imports nothing of theirs.

Every batch is a function of its key alone. The global batch of a training iteration is drawn from
a generator keyed by (seed, iteration), and each DDP rank takes its slice of the micro-batches, so N
ranks with A accumulation steps see exactly what 1 rank sees with N*A, and a resumed run sees the
batches it would have seen. Dropout is seeded per global micro-batch in the same way, and
evaluation batches are keyed by a fixed seed, so every run is scored on the same held-out text.
"""

import os
import platform
import signal
from contextlib import nullcontext
from types import SimpleNamespace

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.constants import default_pg_timeout

import rundir
import sharding
from errors import UserError
from settings import validate_device

DATA_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
EVAL_SEED = 0  # every run is evaluated on the same held-out batches, whatever its seed
TRAIN, EVAL_TRAIN, EVAL_VAL, DROPOUT = range(4)  # streams of keyed random numbers


# ----------------------------------------------------------------------------------------- device


def resolve_device(cfg):
    """What the code decides about the device the settings ask for: SimpleNamespace(name, type,
    dtype), with 'auto' resolved (CUDA with bf16 where supported, else fp16; else MPS; else the CPU in
    float32). The settings themselves stay as given. Sets torch's matmul precision."""
    validate_device(cfg)
    name = cfg.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    try:
        device_type = torch.device(name).type
    except RuntimeError:
        raise UserError(f"device={cfg.device!r} is not a device; use cpu, cuda, cuda:N or mps") from None
    if device_type not in ("cpu", "cuda", "mps"):
        raise UserError(f"device={cfg.device!r} is not supported; use cpu, cuda, cuda:N or mps")
    if device_type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device={cfg.device!r} but CUDA is not available here; use --device=cpu")
    if device_type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"device={cfg.device!r} but Apple's MPS is not available here; use --device=cpu")
    torch.set_float32_matmul_precision(cfg.matmul_precision)
    dtype = cfg.dtype
    if dtype == "auto":
        dtype = ("bfloat16" if torch.cuda.is_bf16_supported() else "float16") if device_type == "cuda" else "float32"
    return SimpleNamespace(name=name, type=device_type, dtype=dtype)


def describe_device(name):
    """The device in words: a GPU's name, or the CPU's model and logical CPUs."""
    kind = torch.device(name).type
    if kind == "cuda":
        return torch.cuda.get_device_name(name)
    if kind == "cpu":
        return f"{rundir.cpu_name()}, {os.cpu_count()} logical CPUs"
    return platform.processor() or platform.machine()


def autocast(device):
    """Mixed precision on a resolved device: nothing for float32, else autocast to its dtype."""
    if device.dtype == "float32":
        return nullcontext()
    return torch.autocast(device.type, dtype=getattr(torch, device.dtype))


def attention_order(setting, device):
    """The order in which SDPA tries its attention kernels on a resolved device: the named one
    first; 'auto' puts cuDNN's first on Hopper and later GPUs (compute capability 9+), where it is
    the fastest torch has; None keeps torch's own order (off CUDA, 'torch', or an older GPU)."""
    from torch.nn.attention import SDPBackend

    if device.type != "cuda" or setting == "torch":
        return None
    if setting == "auto":
        if torch.cuda.get_device_capability(device.name)[0] < 9:
            return None
        setting = "cudnn"
    first = getattr(SDPBackend, {"cudnn": "CUDNN_ATTENTION", "flash": "FLASH_ATTENTION",
                                 "efficient": "EFFICIENT_ATTENTION", "math": "MATH"}[setting])
    order = [SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    return [first] + [b for b in order if b != first]


def attention_kernels(setting, device):
    """A context in which SDPA tries its kernels in attention_order (every kernel stays allowed, so
    a shape the first cannot take runs on the next). Entered before compiling: the compiled graph
    keeps the kernel chosen when it was traced."""
    from torch.nn.attention import sdpa_kernel

    order = attention_order(setting, device)
    return nullcontext() if order is None else sdpa_kernel(order, set_priority=True)


def compile_works(device):
    """torch.compile only fails when a compiled function first runs (no C++ compiler, no Triton,
    an unsupported platform), so try a tiny one before trusting it with the model."""
    try:
        torch.compile(lambda t: t * 2 + 1)(torch.ones(4, device=device))
        return True
    except Exception as e:
        print(f"torch.compile does not work here ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
              "running eager")
        return False


def compile_for_sampling(model, device):
    """Compile model in place for generate (torch.compile(model) would leave generate eager). On
    CUDA with CUDA graphs: the cached decode step has fixed shapes and buffers, and replays as one
    graph instead of a few hundred kernel launches. Eager where compiling does not work."""
    if compile_works(device):
        model.compile(mode="reduce-overhead" if torch.device(device).type == "cuda" else "default")


# -------------------------------------------------------------------------------------- processes


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
                        "node with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in its environment (README: several nodes)")
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


def peak_memory_gib(device):
    """What the run's GPU held at most (torch.cuda.max_memory_allocated of that GPU), in GiB; None off CUDA."""
    return round(torch.cuda.max_memory_allocated(device.name) / 2**30, 3) if device.type == "cuda" else None


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


# ------------------------------------------------------------------------------------------- data


def dataset_dir(name):
    return name if os.sep in name or name.startswith(".") else os.path.join(DATA_ROOT, name)


def check_dataset(dataset):
    """A one-line error unless the dataset is prepared (its train.bin and val.bin exist)."""
    data_dir = dataset_dir(dataset)
    for split in ("train", "val"):
        path = os.path.join(data_dir, f"{split}.bin")
        if not os.path.isfile(path):
            # the dataset's own script; data/prose/prepare.py writes the prose_* datasets
            script = os.path.join(DATA_ROOT, "prose" if dataset.startswith("prose_") else data_dir, "prepare.py")
            how = f"python {script}" if os.path.isfile(script) else "python data/prepare_text.py (see README)"
            raise UserError(f"dataset {dataset!r} has no {path}; prepare it first: {how}")


def tokens_per_iter(cfg):
    """Tokens in one iteration's global batch, at any world size."""
    return cfg.batch_size * cfg.block_size * cfg.gradient_accumulation_steps


def keyed_seed(*key):
    return int(np.random.SeedSequence(key).generate_state(1)[0])


class Batches:
    """Training and evaluation batches of a dataset, each a function of its key alone."""

    def __init__(self, dataset, batch_size, block_size, device, vocab_size):
        self.device, self.B, self.T = device, batch_size, block_size
        self.folder, self.data, self.largest = dataset_dir(dataset), {}, 0  # largest: token id
        check_dataset(dataset)
        for split in ("train", "val"):
            path = os.path.join(dataset_dir(dataset), f"{split}.bin")
            size = os.path.getsize(path)
            if size == 0 or size % 2:
                raise UserError(f"{path} holds {size} bytes, not a whole number of uint16 token ids; prepare "
                                "the dataset again")
            # Opened once: np.memmap reads pages on demand, so even OpenWebText costs no RAM.
            data = np.memmap(path, dtype=np.uint16, mode="r")
            if len(data) < self.T + 1:
                raise UserError(f"{path} holds {len(data)} tokens, fewer than block_size+1={self.T + 1}; "
                                "lower block_size or use more text")
            top = int(data.max())
            self.largest = max(self.largest, top)
            if top >= vocab_size:
                raise UserError(f"{path} holds token id {top}, outside the model's vocab_size {vocab_size}; "
                                "re-run the dataset's prepare script")
            self.data[split] = data
        self.pin = torch.device(device).type == "cuda"
        self.window = np.arange(self.T + 1)

    def get(self, split, offsets):
        buf = torch.from_numpy(self.data[split][offsets[:, None] + self.window].astype(np.int64))
        if self.pin:
            buf = buf.pin_memory().to(self.device, non_blocking=True)
        else:
            buf = buf.to(self.device)
        return buf[:, :-1], buf[:, 1:]

    def offsets(self, split, key, n):
        rng = np.random.default_rng(key)
        return rng.integers(0, len(self.data[split]) - self.T, size=(n, self.B))

    def train(self, seed, it, micro_steps, rank=0, world_size=1):
        """Yield (global micro-step index, x, y) for this rank's share of iteration it, whose global
        batch is micro_steps micro-batches."""
        per_rank = micro_steps // world_size
        all_offsets = self.offsets("train", (seed, TRAIN, it), micro_steps)
        for i in range(rank * per_rank, (rank + 1) * per_rank):
            yield i, *self.get("train", all_offsets[i])

    def eval(self, split, eval_iters):
        stream = EVAL_VAL if split == "val" else EVAL_TRAIN
        for offsets in self.offsets(split, (EVAL_SEED, stream), eval_iters):
            yield self.get(split, offsets)

    def whole(self, split):
        """Every token of a split after its first as a target exactly once, in order, in batches of
        the usual shape (so a compiled model sees no new shape): windows start every block_size
        tokens; the last one ends where the split ends, its targets that the window before covered
        set to -1 (ignored); the last batch is filled up with windows whose targets are all -1.
        Yields (x, y, number of targets counted)."""
        n, T = len(self.data[split]) - 1, self.T  # targets are tokens 1..n
        starts = list(range(0, n - T + 1, T))
        overlap = len(starts) * T - (n - T)  # targets of a last window that the one before counted
        if overlap < T:
            starts.append(n - T)
        for i in range(0, len(starts), self.B):
            rows = starts[i:i + self.B]
            x, y = self.get(split, np.array(rows + [0] * (self.B - len(rows))))
            y = y.clone()  # y is a view of x's buffer, shifted by one
            counted = len(rows) * T
            if i + len(rows) == len(starts) and overlap < T:
                y[len(rows) - 1, :overlap] = -1
                counted -= overlap
            y[len(rows):] = -1
            yield x, y, counted


def seed_dropout(seed, it, micro):
    """Dropout masks of a micro-batch, a function of (seed, iteration, global micro-step) alone."""
    torch.manual_seed(keyed_seed(seed, DROPOUT, it, micro))


# ---------------------------------------------------------------------------------------- signals


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
