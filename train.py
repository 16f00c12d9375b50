"""
Train a GPT whose MLP activation is chosen by name.

One process:       python train.py config/train_shakespeare_char_cpu.py --activation=relu
One node, 8 GPUs:  torchrun --standalone --nproc_per_node=8 train.py config/gpt2_xl_gelu.py
CPU DDP (tests):   torchrun --standalone --nproc_per_node=2 train.py config/... --device=cpu
Plan only:         python train.py config/gpt2_xl_gelu.py --dry_run=True

Every batch is a function of (seed, iteration) alone: the global batch of an iteration is drawn
from a generator keyed by both, and each DDP rank takes its slice of the micro-batches. So N
ranks with A accumulation steps see exactly what 1 rank sees with N*A, and a resumed run sees
the batches it would have seen. Dropout is seeded per global micro-batch in the same way, so
nothing a run draws depends on random-number state carried from one iteration to the next, and a
checkpoint holds none: the iteration number is the whole data position.
"""

import json
import math
import os
import signal
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict
from types import SimpleNamespace

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.constants import default_pg_timeout
from torch.nn.parallel import DistributedDataParallel as DDP

import analysis
import checkpoint
import plan
import tokenizer
from configurator import UserError, configure, exit_status, run_main
from model import ACTIVATIONS, GPT, GPTConfig

DEFAULTS = dict(
    # I/O
    out_dir="out",  # checkpoints and the run's records (config.json, metrics.jsonl, summary.json, analysis.json)
    eval_interval=2000,  # iterations between evaluations (and checkpoints)
    log_interval=1,  # iterations between log lines (each one reads the loss back from the device)
    eval_iters=200,  # batches per split in an evaluation
    eval_only=False,  # evaluate once, print the losses and exit, writing nothing
    always_save_checkpoint=True,  # write ckpt.pt at every eval, not only when val improves
    init_from="scratch",  # 'scratch', 'resume', 'auto' (resume if out_dir has ckpt.pt), 'gpt2'..'gpt2-xl', a folder
    checkpoint="ckpt.pt",  # the file in out_dir that resume and auto continue from; best.pt: from the best eval
    # wandb
    wandb_log=False,  # also log to wandb (WANDB_MODE=offline works without an account)
    wandb_project="activations",  # wandb project
    wandb_group="",  # wandb group (sweeps set their name)
    wandb_run_name="",  # default: the activation and seed
    # data
    dataset="openwebtext",  # a folder under data/, or a path to one
    gradient_accumulation_steps=5 * 8,  # micro-batches per iteration, for the global batch; split across DDP ranks
    batch_size=12,  # micro-batch per rank
    block_size=1024,  # tokens of context
    # model
    n_layer=12,  # transformer blocks
    n_head=12,  # attention heads; must divide n_embd
    n_embd=768,  # width of the residual stream
    dropout=0.0,  # dropout probability (0 for pretraining, ~0.1-0.2 for small data)
    bias=False,  # biases in Linear and LayerNorm layers (GPT-2 has them)
    activation="",  # a name from model.ACTIVATIONS; '' means gelu, or the checkpoint's own
    # AdamW
    learning_rate=6e-4,  # peak learning rate
    max_iters=600000,  # iterations in all
    weight_decay=1e-1,  # AdamW weight decay, on matrices only
    beta1=0.9,  # AdamW beta1
    beta2=0.95,  # AdamW beta2
    grad_clip=1.0,  # clip the gradient norm to this; 0 disables clipping
    decay_lr=True,  # warmup then cosine decay; False keeps learning_rate throughout
    warmup_iters=2000,  # linear warmup from ~0 to learning_rate
    lr_decay_iters=600000,  # the cosine reaches min_lr here (usually max_iters)
    min_lr=6e-5,  # learning rate after the decay (usually learning_rate / 10)
    # system
    device="auto",  # 'cuda', 'cpu', 'mps', 'cuda:1', or auto (cuda, else mps, else cpu)
    dtype="auto",  # 'float32', 'bfloat16', 'float16', or auto (bf16 where supported)
    compile=True,  # torch.compile the model (falls back to eager where it cannot)
    matmul_precision="high",  # torch.set_float32_matmul_precision: 'high' allows TF32 on CUDA; exact fp32 on CPU
    backend="auto",  # DDP: 'nccl' on CUDA, 'gloo' on CPU
    threads=0,  # CPU threads per process; 0 keeps torch's default
    seed=1337,  # fixes the initial weights, the training batches and the dropout masks
    nonfinite="stop",  # on a non-finite loss or gradient: 'stop', or 'skip' the update
    # planning
    dry_run=False,  # print the plan (parameters, tokens, memory per GPU) and exit
    gpu_memory_gb=80.0,  # the GPU memory the plan checks the run against
)

DATA_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
PRETRAINED = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
EVAL_SEED = 0  # every run is evaluated on the same held-out batches, whatever its seed
TRAIN, EVAL_TRAIN, EVAL_VAL, DROPOUT = range(4)  # streams of keyed random numbers


def keyed_seed(*key):
    return int(np.random.SeedSequence(key).generate_state(1)[0])


def dataset_dir(name):
    return name if os.sep in name or name.startswith(".") else os.path.join(DATA_ROOT, name)


def model_config(cfg, vocab_size):
    return GPTConfig(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, block_size=cfg.block_size,
                     bias=cfg.bias, vocab_size=vocab_size, dropout=cfg.dropout, activation=cfg.activation or "gelu")


def planned_config(cfg):
    """The GPTConfig a run will train, from its config alone (no weights read), for the dry run."""
    if cfg.init_from in ("scratch", "resume", "auto"):
        return model_config(cfg, tokenizer.for_dataset(dataset_dir(cfg.dataset)).model_vocab_size)
    import hf

    config = hf.pretrained_config(cfg.init_from, activation=cfg.activation or None, dropout=cfg.dropout)
    config.block_size = min(config.block_size, cfg.block_size)  # build() crops the context the same way
    return config


def validate(cfg):
    if cfg.activation and cfg.activation not in ACTIVATIONS:
        raise UserError(f"unknown activation {cfg.activation!r}; valid: {', '.join(ACTIVATIONS)}")
    if cfg.init_from not in ("scratch", "resume", "auto") + PRETRAINED and not os.path.isdir(cfg.init_from):
        raise UserError(f"init_from={cfg.init_from!r} is not valid; choose scratch, resume, auto, one of "
                        f"{', '.join(PRETRAINED)}, or a folder holding a transformers GPT-2")
    choices = {"backend": ("auto", "nccl", "gloo"), "nonfinite": ("stop", "skip")}
    for key, valid in choices.items():
        if getattr(cfg, key) not in valid:
            raise UserError(f"{key}={getattr(cfg, key)!r} is not valid; choose one of {', '.join(valid)}")
    for key in ("batch_size", "block_size", "gradient_accumulation_steps", "eval_interval", "eval_iters",
                "log_interval", "n_layer", "n_head", "n_embd"):
        if getattr(cfg, key) <= 0:
            raise UserError(f"{key}={getattr(cfg, key)} must be a positive integer")
    for key in ("max_iters", "seed", "threads", "warmup_iters", "lr_decay_iters", "min_lr", "weight_decay",
                "grad_clip"):
        if getattr(cfg, key) < 0:
            raise UserError(f"{key}={getattr(cfg, key)} must be >= 0")
    for key, (low, high) in dict(dropout=(0, 1), beta1=(0, 1), beta2=(0, 1)).items():
        if not low <= getattr(cfg, key) < high:
            raise UserError(f"{key}={getattr(cfg, key)} must be in [{low}, {high})")
    for key in ("learning_rate", "gpu_memory_gb"):
        if getattr(cfg, key) <= 0:
            raise UserError(f"{key}={getattr(cfg, key)} must be > 0")
    if cfg.seed >= 2**63:
        raise UserError(f"seed={cfg.seed} is too large; use a seed below 2**63")
    if cfg.n_embd % cfg.n_head:
        raise UserError(f"n_embd={cfg.n_embd} is not divisible by n_head={cfg.n_head}; each head gets "
                        "n_embd / n_head dimensions")
    if cfg.checkpoint not in ("ckpt.pt", "best.pt"):
        raise UserError(f"checkpoint={cfg.checkpoint!r} is not valid; choose ckpt.pt or best.pt")


DEVICE_CHOICES = {"dtype": ("auto", "float32", "bfloat16", "float16"),
                  "matmul_precision": ("highest", "high", "medium")}


def check_dataset(cfg):
    """A one-line error unless the run's dataset is prepared (its train.bin and val.bin exist)."""
    data_dir = dataset_dir(cfg.dataset)
    for split in ("train", "val"):
        path = os.path.join(data_dir, f"{split}.bin")
        if not os.path.isfile(path):
            script = os.path.join(data_dir, "prepare.py")
            how = f"python {script}" if os.path.isfile(script) else "python data/prepare_text.py (see README)"
            raise UserError(f"dataset {cfg.dataset!r} has no {path}; prepare it first: {how}")


def validate_device(cfg):
    """dtype and matmul_precision, checked before any device is looked at (also by sweep.py)."""
    for key, valid in DEVICE_CHOICES.items():
        if getattr(cfg, key) not in valid:
            raise UserError(f"{key}={getattr(cfg, key)!r} is not valid; choose one of {', '.join(valid)}")


def resolve_device(cfg):
    """Check device, dtype and matmul_precision, fill in 'auto' device and dtype; return the device
    type ('cuda', 'mps' or 'cpu')."""
    validate_device(cfg)
    if cfg.device == "auto":
        cfg.device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    try:
        device_type = torch.device(cfg.device).type
    except RuntimeError:
        raise UserError(f"device={cfg.device!r} is not a device; use cpu, cuda, cuda:N or mps") from None
    if device_type not in ("cpu", "cuda", "mps"):
        raise UserError(f"device={cfg.device!r} is not supported; use cpu, cuda, cuda:N or mps")
    if device_type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device={cfg.device!r} but CUDA is not available here; use --device=cpu")
    if device_type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"device={cfg.device!r} but Apple's MPS is not available here; use --device=cpu")
    torch.set_float32_matmul_precision(cfg.matmul_precision)
    if cfg.dtype == "auto":
        if device_type == "cuda":
            cfg.dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        else:
            cfg.dtype = "float32"
    return device_type


def init_process_group(backend, rank, world_size):
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        dist.init_process_group(backend=backend)
        return
    # torchrun keeps one store across restarts, and a restarted group finds its peers under the
    # same keys, so a rank can read the address of a rank that died and fail to connect
    # (pytorch/pytorch#135712). A prefix per restart, as torch used before it shared the store,
    # keeps the attempts apart.
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world_size,
                          is_master=False, timeout=default_pg_timeout)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    dist.init_process_group(backend, store=dist.PrefixStore(f"attempt_{attempt}/", store), rank=rank,
                            world_size=world_size)


def setup_distributed(cfg, device_type):
    """Join the process group when launched by torchrun; return rank facts."""
    if cfg.backend == "nccl" and device_type != "cuda":
        raise UserError(f"backend='nccl' needs CUDA but device={cfg.device!r}; use --backend=gloo or auto")
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if cfg.gradient_accumulation_steps % world_size:
        raise UserError(
            f"gradient_accumulation_steps={cfg.gradient_accumulation_steps} is not divisible by the "
            f"world size {world_size}; use a multiple of {world_size}"
        )
    ddp = "RANK" in os.environ and not cfg.dry_run
    rank, local_rank = int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
    if ddp:
        backend = cfg.backend if cfg.backend != "auto" else ("nccl" if device_type == "cuda" else "gloo")
        if device_type == "cuda":
            cfg.device = f"cuda:{local_rank}"
            torch.cuda.set_device(cfg.device)
        init_process_group(backend, rank, world_size)
    return SimpleNamespace(ddp=ddp, rank=rank, world_size=world_size, master=rank == 0)


class Batches:
    """Training and evaluation batches, each a function of its key alone."""

    def __init__(self, data_dir, cfg, device, vocab_size):
        self.device, self.B, self.T = device, cfg.batch_size, cfg.block_size
        self.data = {}
        check_dataset(cfg)
        for split in ("train", "val"):
            path = os.path.join(data_dir, f"{split}.bin")
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

    def train(self, cfg, it, rank, world_size):
        """Yield (global micro-step index, x, y) for this rank's share of iteration it."""
        total = cfg.gradient_accumulation_steps
        per_rank = total // world_size
        all_offsets = self.offsets("train", (cfg.seed, TRAIN, it), total)
        for i in range(rank * per_rank, (rank + 1) * per_rank):
            yield i, *self.get("train", all_offsets[i])

    def eval(self, split, eval_iters):
        stream = EVAL_VAL if split == "val" else EVAL_TRAIN
        for offsets in self.offsets(split, (EVAL_SEED, stream), eval_iters):
            yield self.get(split, offsets)


def get_lr(it, cfg):
    """Linear warmup, then cosine decay to min_lr at lr_decay_iters, then min_lr."""
    if not cfg.decay_lr:
        return cfg.learning_rate
    if it < cfg.warmup_iters:
        return cfg.learning_rate * (it + 1) / (cfg.warmup_iters + 1)
    if it > cfg.lr_decay_iters:
        return cfg.min_lr
    ratio = (it - cfg.warmup_iters) / max(1, cfg.lr_decay_iters - cfg.warmup_iters)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (cfg.learning_rate - cfg.min_lr)


@torch.no_grad()
def evaluate(model, batches, cfg, ctx):
    model.eval()
    out = {}
    for split in ("train", "val"):
        losses = []
        for x, y in batches.eval(split, cfg.eval_iters):
            with ctx:
                losses.append(model(x, y)[1])
        out[split] = torch.stack(losses).mean().item()
    model.train()
    return out


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


def train_step(model, optimizer, scaler, batches, cfg, ranks, ctx, it):
    """Forward and backward over this rank's micro-batches of iteration it, then unscale and clip.
    Returns (mean micro-batch loss on this rank, gradient norm); the caller applies the update."""
    lr = get_lr(it, cfg)
    for group in optimizer.param_groups:
        group["lr"] = lr
    per_rank = cfg.gradient_accumulation_steps // ranks.world_size
    loss_sum = 0.0
    for micro, x, y in batches.train(cfg, it, ranks.rank, ranks.world_size):
        if cfg.dropout > 0:
            torch.manual_seed(keyed_seed(cfg.seed, DROPOUT, it, micro))
        if ranks.ddp:  # all-reduce gradients on the last micro-step only
            model.require_backward_grad_sync = (micro + 1) % per_rank == 0
        with ctx:
            _, loss = model(x, y)
            loss = loss / per_rank
        loss_sum += loss.detach()
        scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
    return loss_sum, norm


def apply_update(optimizer, scaler, norm):
    """Step the optimizer unless the gradient norm is not finite, deciding on the device (no host
    sync): the fused AdamW kernel skips the update where found_inf is 1. With fp16, GradScaler's
    own policy (skip the step, lower the scale) applies instead. Returns 1.0 if skipped, else 0.0."""
    if scaler.is_enabled():
        scaler.step(optimizer)
        scaler.update()
        skipped = torch.zeros((), device=norm.device)
    else:
        skipped = (~torch.isfinite(norm)).float()
        optimizer.found_inf = skipped
        optimizer.step()
        del optimizer.found_inf
    optimizer.zero_grad(set_to_none=True)
    return skipped


def autocast(cfg, device_type):
    return nullcontext() if cfg.dtype == "float32" else torch.autocast(device_type, dtype=getattr(torch, cfg.dtype))


def git_revision():
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                             cwd=os.path.dirname(os.path.abspath(__file__)), timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def parsed(line):
    """A metrics.jsonl line as a dict; None for a line a killed process left half written."""
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


class Records:
    """The run's machine-readable records: metrics.jsonl, summary.json, and wandb (rank 0 only)."""

    def __init__(self, cfg, out_dir, keep_until, wandb_id):
        self.path = os.path.join(out_dir, "metrics.jsonl")
        self.wandb = None
        # On resume, drop what a crashed process logged after its last checkpoint:
        # the resumed run writes those lines again, identically.
        kept = []
        if os.path.exists(self.path):
            with open(self.path) as f:
                kept = [line for line in f if parsed(line) and keep_until(parsed(line))]
        checkpoint.atomic_write(self.path, lambda f: f.write("".join(kept).encode()))
        self.file = open(self.path, "a")
        self.evals = [r for r in map(json.loads, kept) if "val_loss" in r]
        self.resumes = [r for r in map(json.loads, kept) if "resumed_with" in r]
        if cfg.wandb_log:
            import wandb

            self.wandb = wandb.init(
                project=cfg.wandb_project, group=cfg.wandb_group or None, dir=out_dir,
                name=cfg.wandb_run_name or f"{cfg.activation}-seed{cfg.seed}",
                config=vars(cfg), id=wandb_id, resume="allow",
            )

    def log(self, record):
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if "val_loss" in record:
            self.evals.append(record)
        if "resumed_with" in record:
            self.resumes.append(record)
        elif self.wandb is not None:
            # wall_s is left to wandb's own _runtime: an eval and a train record share a step
            self.wandb.log({k: v for k, v in record.items() if k not in ("iter", "wall_s")}, step=record["iter"])

    def close(self):
        self.file.close()
        if self.wandb is not None:
            self.wandb.finish()


# Settings that decide which batches and dropout masks a run sees: a resumed run must keep them.
# (Its model's shape and activation are checked against the checkpoint's model itself.)
KEPT_ON_RESUME = ("seed", "dropout", "batch_size", "gradient_accumulation_steps")
# How a run was started, not what it computes.
NOT_A_CHANGE = ("init_from", "checkpoint", "out_dir", "eval_only", "dry_run")


def resume_changes(saved, cfg, ckpt_path):
    """{key: [checkpoint's value, this run's]} for the settings a resumed run changes (a longer
    schedule, another device, a lower learning rate); refuses those that would change its data."""
    for key in KEPT_ON_RESUME:
        if saved.get(key) != getattr(cfg, key):
            raise UserError(f"{ckpt_path} was trained with {key}={saved.get(key)!r} but this run asks for "
                            f"{key}={getattr(cfg, key)!r}; a resumed run keeps it (or start a new out_dir)")
    if os.path.realpath(dataset_dir(saved["dataset"])) != os.path.realpath(dataset_dir(cfg.dataset)):
        raise UserError(f"{ckpt_path} was trained on dataset={saved['dataset']!r} but this run asks for "
                        f"dataset={cfg.dataset!r}; fine-tune from it in a new out_dir instead")
    return {k: [saved.get(k), v] for k, v in vars(cfg).items() if k not in NOT_A_CHANGE and saved.get(k) != v}


def build(cfg, device_type, data_dir):
    """Model, optimizer, scaler, the saved state to continue from (None when fresh), and the GPT-2
    the run started from (None when it started from scratch)."""
    tok = tokenizer.for_dataset(data_dir)
    vocab_size = tok.model_vocab_size
    ckpt_path = os.path.join(cfg.out_dir, cfg.checkpoint)
    if cfg.init_from == "auto":
        cfg.init_from = "resume" if os.path.exists(ckpt_path) else "scratch"
    state, pretrained = None, None
    if cfg.init_from == "resume":
        state = checkpoint.load(ckpt_path)
        if state.get("nanogpt"):
            raise UserError(f"{ckpt_path} was written by nanoGPT: sample.py and hf.py read it (its MLP is the exact "
                            "GELU), but a run resumes only from train.py's checkpoints; to fine-tune it, export it "
                            "(python hf.py --to=DIR) and train with --init_from=DIR")
        missing = [k for k in ("optimizer", "scaler", "iter_num", "evaluated", "best_val_loss", "config")
                   if k not in state]
        if missing:
            raise UserError(f"{ckpt_path} lacks {', '.join(missing)}: it is not a checkpoint train.py wrote, so a run "
                            "cannot resume from it; start a new out_dir (--init_from=scratch)")
        saved, pretrained = state["model_args"], state.get("pretrained")
        cfg.activation = cfg.activation or saved["activation"]
        wanted = dict(block_size=cfg.block_size, activation=cfg.activation)
        if pretrained:  # the shape is GPT-2's, whatever the config's model keys say
            cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.bias = (saved[k] for k in ("n_layer", "n_head", "n_embd", "bias"))
        else:
            wanted.update(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, bias=cfg.bias,
                          vocab_size=vocab_size)
        for key, value in wanted.items():
            if saved[key] != value:
                raise UserError(f"{ckpt_path} was trained with {key}={saved[key]!r} but this run asks for "
                                f"{key}={value!r}; use the checkpoint's config or a new out_dir")
        state["changes"] = resume_changes(state["config"], cfg, ckpt_path)
        if state.get("tokenizer", tok.state) != tok.state:
            raise UserError(f"{ckpt_path} was trained on another vocabulary than {data_dir} holds now (was the "
                            "dataset prepared again from other text?); resume on the data it was trained on")
        model = checkpoint.build_model(state)
    elif cfg.init_from != "scratch":  # a published GPT-2, by name or from a local folder
        import hf

        pretrained = cfg.init_from
        published = hf.pretrained_config(cfg.init_from)  # from config.json or GPT-2's shapes, no weights
        if not tok.fits(published.vocab_size):
            raise UserError(f"{cfg.init_from} has a {published.vocab_size}-token vocabulary, but dataset "
                            f"{cfg.dataset!r} is tokenized with {tok}; fine-tune it on data in its own tokens")
        if cfg.block_size > published.block_size:
            raise UserError(f"block_size={cfg.block_size} exceeds the {published.block_size} positions of "
                            f"{cfg.init_from}; use block_size <= {published.block_size}")
        trained_with = published.activation  # gelu_tanh for OpenAI's
        cfg.activation = cfg.activation or trained_with
        model = hf.load_pretrained(cfg.init_from, activation=cfg.activation, dropout=cfg.dropout)
        if cfg.activation != trained_with:
            print(f"surgery: {cfg.init_from} was trained with {trained_with}; its MLPs now use {cfg.activation}")
        cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.bias = (model.config.n_layer, model.config.n_head,
                                                         model.config.n_embd, model.config.bias)
        if cfg.block_size < model.config.block_size:
            model.crop_block_size(cfg.block_size)
        vocab_size = model.config.vocab_size
    else:
        cfg.activation = cfg.activation or "gelu"
        # The initial weights are a function of the seed alone: the same on every rank, and the same
        # for every ungated activation, so runs that differ only in the activation start alike.
        torch.manual_seed(cfg.seed)
        model = GPT(model_config(cfg, vocab_size))
    model.config.dropout = cfg.dropout
    model.to(cfg.device)
    optimizer = model.configure_optimizers(cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2))
    scaler = torch.amp.GradScaler(device_type, enabled=cfg.dtype == "float16")
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
    return model, optimizer, scaler, state, pretrained


class StopRequest:
    """SIGINT/SIGTERM ask the loop to finish the current step, checkpoint, and exit. As a context
    manager (sweep.py), the previous handlers come back on leaving."""

    def __init__(self):
        self.signum = 0
        self.previous = {sig: signal.signal(sig, self.handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def handle(self, signum, frame):
        self.signum = signum

    def agreed(self, ranks, device):
        """Whether any rank was signalled; every rank must stop at the same iteration."""
        if not ranks.ddp:
            return self.signum
        flag = torch.tensor([self.signum], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        self.signum = int(flag.item())
        return self.signum


def train(cfg, ranks, device_type):
    data_dir = dataset_dir(cfg.dataset)
    if cfg.init_from not in ("resume", "auto") and not cfg.eval_only and \
            os.path.exists(os.path.join(cfg.out_dir, "ckpt.pt")):
        raise UserError(f"out_dir={cfg.out_dir!r} already holds a run (ckpt.pt); continue it with --init_from=resume "
                        f"(or auto), or start this one in another out_dir")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    model, optimizer, scaler, state, pretrained = build(cfg, device_type, data_dir)
    batches = Batches(data_dir, cfg, cfg.device, model.config.vocab_size)
    vocabulary = tokenizer.for_dataset(data_dir).state  # saved in every checkpoint: it samples anywhere
    start_iter = state["iter_num"] if state else 0
    evaluated = state["evaluated"] if state else False  # was iteration start_iter evaluated before saving?
    best_val_loss = state["best_val_loss"] if state else float("inf")
    elapsed0 = state["elapsed"] if state else 0.0
    wandb_id = state["wandb_id"] if state else f"{int(time.time())}-{os.getpid()}"
    changes = state["changes"] if state else {}
    if state:
        print(f"resuming from {cfg.out_dir}/{cfg.checkpoint} at iteration {start_iter}"
              + "".join(f"; {k} {old!r} -> {new!r}" for k, (old, new) in changes.items()))
    del state

    raw = model
    if cfg.compile and compile_works(cfg.device):
        model = torch.compile(model)
    eval_model = model
    if ranks.ddp:
        model = DDP(model, device_ids=[cfg.device] if device_type == "cuda" else None, gradient_as_bucket_view=True)
    ctx = autocast(cfg, device_type)
    if cfg.eval_only:  # print the losses; a run's records and checkpoints are left as they are
        if ranks.master:
            losses = evaluate(eval_model, batches, cfg, ctx)
            print(f"step {start_iter}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f} "
                  "(eval_only: nothing written)")
        return 0
    stop = StopRequest()
    tokens_per_iter = cfg.batch_size * cfg.block_size * cfg.gradient_accumulation_steps
    peak = plan.datasheet_peak_flops(cfg.device)

    records = None
    if ranks.master:
        try:  # fail now, not at the first checkpoint
            os.makedirs(cfg.out_dir, exist_ok=True)
            checkpoint.remove_stale_temporaries(cfg.out_dir)
            checkpoint.write_json(os.path.join(cfg.out_dir, "config.json"), vars(cfg))
        except OSError as e:
            raise UserError(f"cannot write to out_dir={cfg.out_dir!r} ({e.strerror}); choose a writable folder") \
                from None

        def logged_before_checkpoint(r):
            return r["iter"] < start_iter or (evaluated and r["iter"] == start_iter and "val_loss" in r)

        records = Records(cfg, cfg.out_dir, logged_before_checkpoint, wandb_id)
        if changes:  # settings this resumed run changed, on the record
            records.log(dict(iter=start_iter, resumed_with=changes))
        print(json.dumps(vars(cfg), indent=2))
        print(f"parameters: {raw.get_num_params():,}; tokens per iteration: {tokens_per_iter:,}")
    last_ckpt = (os.path.join(cfg.out_dir, cfg.checkpoint), start_iter) if start_iter else None
    t_start = time.time()

    def save(it, is_evaluated):
        nonlocal last_ckpt
        path = os.path.join(cfg.out_dir, "ckpt.pt")
        checkpoint.save(dict(
            model=raw.state_dict(), optimizer=optimizer.state_dict(), scaler=scaler.state_dict(),
            model_args=asdict(raw.config), iter_num=it, evaluated=is_evaluated, best_val_loss=best_val_loss,
            config=vars(cfg), elapsed=elapsed0 + time.time() - t_start, wandb_id=wandb_id,
            pretrained=pretrained, tokenizer=vocabulary,
        ), path)
        last_ckpt = (path, it)
        return path

    it = start_iter
    window_t, window_steps, first_window = time.time(), 0, True
    measured_tokens, measured_time = 0, 0.0
    loss_acc = torch.zeros((), device=cfg.device)
    # Skipped updates are counted on the device and looked at only where the loop syncs anyway.
    skipped_acc, first_skipped = torch.zeros((), device=cfg.device), torch.full((), -1, device=cfg.device)

    def check_finite():
        n = int(skipped_acc.item())
        if n == 0:
            return
        where = f"{last_ckpt[0]} (iteration {last_ckpt[1]})" if last_ckpt else "none written yet"
        if cfg.nonfinite == "stop":
            raise UserError(f"non-finite loss or gradient norm at iteration {int(first_skipped.item())} (its update "
                            f"was not applied); last good checkpoint: {where}; lower learning_rate, or set "
                            "nonfinite='skip'")
        print(f"{n} update(s) skipped for non-finite gradients, first at iteration {int(first_skipped.item())}")
        skipped_acc.zero_()
        first_skipped.fill_(-1)
    while True:
        due = (it % cfg.eval_interval == 0 or it == cfg.max_iters) and not (evaluated and it == start_iter)
        if due:
            check_finite()  # before anything is evaluated or saved
        if due and ranks.master:
            losses = evaluate(eval_model, batches, cfg, ctx)
            if not all(map(math.isfinite, losses.values())):  # weights no update can bring back
                where = f"{last_ckpt[0]} (iteration {last_ckpt[1]})" if last_ckpt else "none written yet"
                raise UserError(f"non-finite evaluation loss at iteration {it} ({losses['train']}, {losses['val']}); "
                                f"nothing saved; last good checkpoint: {where}; lower learning_rate")
            wall = elapsed0 + time.time() - t_start
            print(f"step {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
            records.log(dict(iter=it, train_loss=losses["train"], val_loss=losses["val"],
                             lr=get_lr(it, cfg), wall_s=round(wall, 3)))
            improved = losses["val"] < best_val_loss
            best_val_loss = min(best_val_loss, losses["val"])
            if it > 0 and (improved or cfg.always_save_checkpoint or it == cfg.max_iters):
                path = save(it, True)
                if improved:
                    checkpoint.keep_copy(path, os.path.join(cfg.out_dir, "best.pt"))
            window_t, window_steps = time.time(), 0  # evaluation is not training time
        if it >= cfg.max_iters:
            break

        loss, norm = train_step(model, optimizer, scaler, batches, cfg, ranks, ctx, it)
        loss_acc += loss
        skipped = apply_update(optimizer, scaler, norm)
        skipped_acc += skipped
        first_skipped = torch.where((first_skipped < 0) & (skipped > 0), it, first_skipped)
        window_steps += 1

        if it % cfg.log_interval == 0 or it == cfg.max_iters - 1:
            if ranks.ddp:  # the iteration's loss over all ranks (gloo has no AVG)
                dist.all_reduce(loss_acc)
                loss_acc /= ranks.world_size
            lossf = loss_acc.item()  # the host-device sync of this iteration
            check_finite()
            now = time.time()
            dt = (now - window_t) / window_steps
            tokens_per_s = tokens_per_iter / dt
            if not first_window:
                measured_tokens += tokens_per_iter * window_steps
                measured_time += now - window_t
            first_window = False
            window_t, window_steps = now, 0
            if ranks.master:
                mfu = f", mfu {100 * raw.estimate_mfu(tokens_per_s, peak):.1f}%" if peak else ""
                lr = get_lr(it, cfg)
                print(f"iter {it}: loss {lossf:.4f}, lr {lr:.3e}, {dt * 1000:.1f} ms/iter, "
                      f"{tokens_per_s:,.0f} tokens/s{mfu}")
                records.log(dict(iter=it, loss=lossf, lr=lr, ms_per_iter=round(dt * 1000, 3),
                                 tokens_per_s=round(tokens_per_s, 1), wall_s=round(elapsed0 + now - t_start, 3)))
        loss_acc.zero_()
        it += 1

        if stop.agreed(ranks, cfg.device):
            check_finite()
            if ranks.master:
                path = save(it, False)
                print(f"stopped by signal {stop.signum} after iteration {it - 1}; saved {path}; "
                      "continue with --init_from=resume (or auto)")
            records and records.close()
            return 128 + stop.signum

    if ranks.master:
        final = records.evals[-1] if records.evals else {}
        summary = dict(
            complete=True, activation=cfg.activation, seed=cfg.seed, n_params=raw.get_num_params(),
            best_val_loss=min(r["val_loss"] for r in records.evals), final_val_loss=final.get("val_loss"),
            iters=cfg.max_iters, tokens_seen=cfg.max_iters * tokens_per_iter,
            tokens_per_s=round(measured_tokens / measured_time, 1) if measured_time else None,
            wall_s=round(elapsed0 + time.time() - t_start, 3), world_size=ranks.world_size,
            device=cfg.device, torch=torch.__version__, git=git_revision(), config=vars(cfg),
            train_tokens=len(batches.data["train"]), resumed_with=records.resumes,
        )
        # what the MLPs do, measured now, while the model is at hand (reports read this file)
        result = analysis.analyse(raw, list(batches.eval("val", analysis.BATCHES)))
        checkpoint.write_json(os.path.join(cfg.out_dir, "analysis.json"), result)
        checkpoint.write_json(os.path.join(cfg.out_dir, "summary.json"), summary)
        print(f"best val loss {summary['best_val_loss']:.4f}; summary in {cfg.out_dir}/summary.json")
        records.close()
    return 0


def plan_or_train(cfg, ranks, device_type):
    if cfg.dry_run:
        if ranks.master:
            plan.plan(cfg, planned_config(cfg), ranks.world_size)
        return 0
    return train(cfg, ranks, device_type)


def main(argv):
    cfg = SimpleNamespace(**configure(DEFAULTS, argv, __doc__, [__file__]))
    validate(cfg)
    device_type = resolve_device(cfg)
    ranks = setup_distributed(cfg, device_type)
    if not ranks.ddp:
        return plan_or_train(cfg, ranks, device_type)
    try:
        code = exit_status(plan_or_train, cfg, ranks, device_type)
    finally:
        dist.destroy_process_group()
    # DDP keeps its process group alive past destroy_process_group, and a gloo worker thread that
    # drops its last tensor while the interpreter shuts down aborts the process (SIGABRT) after a
    # finished run. Everything is written and closed by now, so leave without that shutdown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run_main(main)
