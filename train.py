"""
Train a GPT whose MLP activation is chosen by name.

One process:       python train.py config/train_shakespeare_char_cpu.py --activation=relu
One node, 8 GPUs:  torchrun --standalone --nproc_per_node=8 train.py config/gpt2_xl_gelu.py
CPU DDP (tests):   torchrun --standalone --nproc_per_node=2 train.py config/... --device=cpu
Plan only:         python train.py config/gpt2_xl_gelu.py --dry_run=True

The story of a run is train() at the bottom: build or resume the model, then evaluate and save,
step, log, and stop on a signal, until max_iters. Batches and dropout masks are functions of
(seed, iteration, micro-step) alone (runtime.py), so N ranks with A accumulation steps see exactly
what 1 rank sees with N*A, a resumed run sees what it would have seen, and a checkpoint holds no
random-number state: the iteration number is the whole data position.
"""

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from types import SimpleNamespace

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.constants import default_pg_timeout
from torch.nn.parallel import DistributedDataParallel as DDP

import analysis
import checkpoint
import files
import hf
import plan
import sharding
import tokenizer
from configurator import UserError, configure, exit_status, run_main
from model import ACTIVATIONS, GPT, GPTConfig
from runtime import (Batches, StopRequest, autocast, compile_works, dataset_dir, resolve_device, seed_dropout,
                     tokens_per_iter)

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
    compile_mode="default",  # torch.compile's mode: 'default', 'reduce-overhead' (CUDA graphs), 'max-autotune'
    fused_loss=False,  # the loss from the last hidden states in chunks, never all logits at once (torch >= 2.13)
    matmul_precision="high",  # torch.set_float32_matmul_precision: 'high' allows TF32 on CUDA; exact fp32 on CPU
    backend="auto",  # DDP: 'nccl' on CUDA, 'gloo' on CPU
    threads=0,  # CPU threads per process; 0 keeps torch's default
    fsdp=False,  # under torchrun, shard weights, gradients and AdamW state over the ranks (FSDP2) instead of DDP
    activation_checkpointing=False,  # recompute each block's activations in backward: less memory, ~1/3 more compute
    seed=1337,  # fixes the initial weights, the training batches and the dropout masks
    nonfinite="stop",  # on a non-finite loss or gradient: 'stop', or 'skip' the update
    # planning
    dry_run=False,  # print the plan (parameters, tokens, memory per GPU) and exit
    gpu_memory_gb=80.0,  # the GPU memory the plan checks the run against
    world_size=0,  # the GPUs the plan is for; 0: the run's own (torchrun's WORLD_SIZE, else 1)
)
INITS = ("scratch", "resume", "auto")  # besides a GPT-2 to start from (hf.py)


# ----------------------------------------------------------------------------------- the config


def validate(cfg):
    """Every setting checked before anything is read or written."""
    if cfg.activation and cfg.activation not in ACTIVATIONS:
        raise UserError(f"unknown activation {cfg.activation!r}; valid: {', '.join(ACTIVATIONS)}")
    hf.check_init_from(cfg.init_from, INITS)
    choices = {"backend": ("auto", "nccl", "gloo"), "nonfinite": ("stop", "skip"),
               "checkpoint": ("ckpt.pt", "best.pt"), "compile_mode": ("default", "reduce-overhead", "max-autotune")}
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


def model_config(cfg, vocab_size):
    return GPTConfig(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, block_size=cfg.block_size,
                     bias=cfg.bias, vocab_size=vocab_size, dropout=cfg.dropout, activation=cfg.activation or "gelu")


def planned_config(cfg):
    """The GPTConfig a run will train, from its config alone (no weights read), for the dry run."""
    if cfg.init_from in INITS:
        return model_config(cfg, tokenizer.for_dataset(dataset_dir(cfg.dataset)).model_vocab_size)
    config = hf.pretrained_config(cfg.init_from, activation=cfg.activation or None, dropout=cfg.dropout)
    config.block_size = min(config.block_size, cfg.block_size)  # build() crops the context the same way
    return config


# -------------------------------------------------------------------------------- the processes


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
    if cfg.fsdp and not cfg.dry_run and not ddp:
        raise UserError("fsdp=True shards the model over the ranks of torchrun; launch with torchrun "
                        "(e.g. torchrun --standalone --nproc_per_node=8 train.py ...), or leave fsdp off")
    if cfg.fsdp and cfg.dtype not in sharding.FSDP_DTYPES:
        raise UserError(f"fsdp=True works with dtype float32 or bfloat16, not {cfg.dtype!r} (fp16's GradScaler "
                        "cannot unscale sharded gradients); use --dtype=bfloat16")
    rank, local_rank = int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
    if ddp:
        backend = cfg.backend if cfg.backend != "auto" else ("nccl" if device_type == "cuda" else "gloo")
        if device_type == "cuda":
            cfg.device = f"cuda:{local_rank}"
            torch.cuda.set_device(cfg.device)
        init_process_group(backend, rank, world_size)
    return SimpleNamespace(ddp=ddp, rank=rank, world_size=world_size, master=rank == 0)


# ----------------------------------------------------------------- the model, and where it starts


@dataclass
class Start:
    """Where a run starts: from scratch or a GPT-2 at iteration 0, or where its checkpoint left off."""

    iter: int = 0
    evaluated: bool = False  # was iteration `iter` evaluated before the checkpoint was saved?
    best_val_loss: float = float("inf")
    elapsed: float = 0.0  # wall seconds before this process
    wandb_id: str = field(default_factory=lambda: f"{int(time.time())}-{os.getpid()}")
    pretrained: str = None  # the GPT-2 the run started from
    tokenizer: dict = None  # Tokenizer.state of the run's data, saved in every checkpoint
    changes: dict = field(default_factory=dict)  # settings this resumed run changed: {key: [old, new]}
    t0: float = field(default_factory=time.time)

    def wall(self):
        return self.elapsed + time.time() - self.t0


# Settings that decide which batches and dropout masks a run sees: a resumed run must keep them.
# (Its model's shape and activation are checked against the checkpoint's model itself.)
KEPT_ON_RESUME = ("seed", "dropout", "batch_size", "gradient_accumulation_steps")
# How a run was started, not what it computes.
NOT_A_CHANGE = ("init_from", "checkpoint", "out_dir", "eval_only", "dry_run")
RESUMABLE = ("optimizer", "scaler", "iter_num", "evaluated", "best_val_loss", "config", "elapsed", "wandb_id")


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


def resume(cfg, tok):
    """The model and saved state of out_dir's checkpoint, after checking this run may continue it."""
    path = os.path.join(cfg.out_dir, cfg.checkpoint)
    state = checkpoint.load(path)
    if state.get("nanogpt"):
        raise UserError(f"{path} was written by nanoGPT: sample.py and hf.py read it (its MLP is the exact "
                        "GELU), but a run resumes only from train.py's checkpoints; to fine-tune it, export it "
                        "(python hf.py --to=DIR) and train with --init_from=DIR")
    missing = [k for k in RESUMABLE if k not in state]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}: it is not a checkpoint train.py wrote, so a run "
                        "cannot resume from it; start a new out_dir (--init_from=scratch)")
    saved = state["model_args"]
    cfg.activation = cfg.activation or saved["activation"]
    wanted = dict(block_size=cfg.block_size, activation=cfg.activation)
    if state.get("pretrained"):  # the shape is GPT-2's, whatever the config's model keys say
        cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.bias = (saved[k] for k in ("n_layer", "n_head", "n_embd", "bias"))
    else:
        wanted.update(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, bias=cfg.bias,
                      vocab_size=tok.model_vocab_size)
    for key, value in wanted.items():
        if saved[key] != value:
            raise UserError(f"{path} was trained with {key}={saved[key]!r} but this run asks for "
                            f"{key}={value!r}; use the checkpoint's config or a new out_dir")
    changes = resume_changes(state["config"], cfg, path)
    if state.get("tokenizer", tok.state) != tok.state:
        raise UserError(f"{path} was trained on another vocabulary than {dataset_dir(cfg.dataset)} holds now (was "
                        "the dataset prepared again from other text?); resume on the data it was trained on")
    start = Start(iter=state["iter_num"], evaluated=state["evaluated"], best_val_loss=state["best_val_loss"],
                  elapsed=state["elapsed"], wandb_id=state["wandb_id"], pretrained=state.get("pretrained"),
                  tokenizer=tok.state, changes=changes)
    return checkpoint.build_model(state), state, start


def from_gpt2(cfg, tok):
    """A published GPT-2 (by name, or a transformers folder), its MLPs computing cfg.activation."""
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
    return model


def fused_loss_works():
    if hasattr(torch.nn.functional, "linear_cross_entropy"):
        return True
    print(f"fused_loss needs torch.nn.functional.linear_cross_entropy (torch >= 2.13, here {torch.__version__}); "
          "computing the loss from the logits")
    return False


def build(cfg, device_type):
    """Model, optimizer and GradScaler on the run's device, and where the run starts."""
    tok = tokenizer.for_dataset(dataset_dir(cfg.dataset))
    if cfg.init_from == "auto":
        cfg.init_from = "resume" if os.path.exists(os.path.join(cfg.out_dir, cfg.checkpoint)) else "scratch"
    state = None
    if cfg.init_from == "resume":
        model, state, start = resume(cfg, tok)
    elif cfg.init_from != "scratch":
        model, start = from_gpt2(cfg, tok), Start(pretrained=cfg.init_from, tokenizer=tok.state)
    else:
        cfg.activation = cfg.activation or "gelu"
        # The initial weights are a function of the seed alone: the same on every rank, and the same
        # for every ungated activation, so runs that differ only in the activation start alike.
        torch.manual_seed(cfg.seed)
        model, start = GPT(model_config(cfg, tok.model_vocab_size)), Start(tokenizer=tok.state)
    model.config.dropout = cfg.dropout
    model.activation_checkpointing = cfg.activation_checkpointing
    model.fused_loss = cfg.fused_loss and fused_loss_works()
    model.to(cfg.device)
    if cfg.fsdp:
        sharding.shard(model, cfg)  # before the optimizer, which must hold the sharded parameters
    optimizer = model.configure_optimizers(cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2))
    scaler = torch.amp.GradScaler(device_type, enabled=cfg.dtype == "float16")
    if state is not None:
        sharding.load_optimizer(model, optimizer, state["optimizer"], cfg.fsdp)
        scaler.load_state_dict(state["scaler"])
    return model, optimizer, scaler, start


# ------------------------------------------------------------------------------------ a step


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


class Step:
    """One training iteration of this rank: its micro-batches forward and backward, clipping, and
    the optimizer's update."""

    def __init__(self, model, optimizer, scaler, batches, cfg, ranks, ctx):
        self.model, self.optimizer, self.scaler, self.batches = model, optimizer, scaler, batches
        self.cfg, self.ranks, self.ctx = cfg, ranks, ctx
        self.per_rank = cfg.gradient_accumulation_steps // ranks.world_size
        self.params = [p for group in optimizer.param_groups for p in group["params"]]

    def backward(self, it):
        """Forward and backward over the micro-batches of iteration it, then unscale and clip.
        Returns (mean micro-batch loss on this rank, gradient norm before clipping)."""
        cfg, lr = self.cfg, get_lr(it, self.cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss_sum = 0.0
        for micro, x, y in self.batches.train(cfg.seed, it, cfg.gradient_accumulation_steps, self.ranks.rank,
                                              self.ranks.world_size):
            if cfg.dropout > 0:
                seed_dropout(cfg.seed, it, micro)
            if self.ranks.ddp:  # reduce gradients over the ranks on the last micro-step only
                sharding.sync_gradients(self.model, cfg.fsdp, (micro + 1) % self.per_rank == 0)
            with self.ctx:
                _, loss = self.model(x, y)
                loss = loss / self.per_rank
            loss_sum += loss.detach()
            self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        return loss_sum, sharding.local(norm)

    def update(self, norm):
        """Step the optimizer unless the gradient norm is not finite, deciding on the device (no host
        sync): the fused AdamW kernel skips the update where found_inf is 1. With fp16, GradScaler's
        own policy (skip the step, lower the scale) applies instead. Returns 1.0 if skipped, else 0.0."""
        if self.scaler.is_enabled():
            self.scaler.step(self.optimizer)
            self.scaler.update()
            skipped = torch.zeros((), device=norm.device)
        else:
            skipped = (~torch.isfinite(norm)).float()
            self.optimizer.found_inf = skipped
            self.optimizer.step()
            del self.optimizer.found_inf
        self.optimizer.zero_grad(set_to_none=True)
        return skipped


@torch.no_grad()
def evaluate(model, batches, eval_iters, ctx):
    model.eval()
    out = {}
    for split in ("train", "val"):
        losses = []
        for x, y in batches.eval(split, eval_iters):
            with ctx:
                losses.append(model(x, y)[1])
        out[split] = torch.stack(losses).mean().item()
    model.train()
    return out


@torch.no_grad()
def whole_split_loss(model, batches, split, ctx):
    """Mean loss over every token of a split, each counted once (Batches.whole), and the number of
    tokens: a run's score free of the sampling error of the periodic evaluation's few batches."""
    model.eval()
    total, count = 0.0, 0
    for x, y, counted in batches.whole(split):
        with ctx:
            logits, _ = model(x, y)
        total += F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=-1, reduction="sum").item()
        count += counted
    model.train()
    return total / count, count


# ------------------------------------------------------------------------- what a run keeps


def parsed(line):
    """A metrics.jsonl line as a dict; None for a line a killed process left half written."""
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


class Records:
    """The run's machine-readable records (rank 0 only): config.json, metrics.jsonl, wandb."""

    def __init__(self, cfg, start):
        try:  # fail now, not at the first checkpoint
            os.makedirs(cfg.out_dir, exist_ok=True)
            files.remove_stale_temporaries(cfg.out_dir)
            files.write_json(os.path.join(cfg.out_dir, "config.json"), vars(cfg))
        except OSError as e:
            raise UserError(f"cannot write to out_dir={cfg.out_dir!r} ({e.strerror}); choose a writable folder") \
                from None
        self.path = os.path.join(cfg.out_dir, "metrics.jsonl")
        # On resume, drop what a crashed process logged after its checkpoint: the resumed run logs
        # those iterations again, identically.
        kept = []
        if os.path.exists(self.path):
            with open(self.path) as f:
                kept = [r for r in map(parsed, f) if r and (r["iter"] < start.iter or (
                    start.evaluated and r["iter"] == start.iter and "val_loss" in r))]
        files.atomic_write(self.path, lambda f: f.write("".join(json.dumps(r) + "\n" for r in kept).encode()))
        self.file = open(self.path, "a")
        self.evals = [r for r in kept if "val_loss" in r]
        self.resumes = [r for r in kept if "resumed_with" in r]
        self.wandb = None
        if cfg.wandb_log:
            import wandb

            self.wandb = wandb.init(
                project=cfg.wandb_project, group=cfg.wandb_group or None, dir=cfg.out_dir,
                name=cfg.wandb_run_name or f"{cfg.activation}-seed{cfg.seed}",
                config=vars(cfg), id=start.wandb_id, resume="allow",
            )
        if start.changes:  # settings this resumed run changed, on the record
            self.log(dict(iter=start.iter, resumed_with=start.changes))

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


class Checkpoints:
    """ckpt.pt (the latest state) and best.pt (an independent copy of the best evaluation's), and
    the best val loss they are judged by. Every rank calls them (FSDP gathers the shards); rank 0
    writes."""

    def __init__(self, cfg, ranks, model, optimizer, scaler, start):
        self.cfg, self.master, self.model, self.optimizer, self.scaler = cfg, ranks.master, model, optimizer, scaler
        self.start, self.best_val_loss = start, start.best_val_loss
        self.last = (os.path.join(cfg.out_dir, cfg.checkpoint), start.iter) if start.iter else None

    def save(self, it, evaluated):
        path = os.path.join(self.cfg.out_dir, "ckpt.pt")
        model_state, optimizer_state = sharding.full_state(self.model, self.optimizer, self.cfg.fsdp, self.master)
        if self.master:
            checkpoint.save(dict(
                model=model_state, optimizer=optimizer_state, scaler=self.scaler.state_dict(),
                model_args=asdict(self.model.config), iter_num=it, evaluated=evaluated,
                best_val_loss=self.best_val_loss, config=vars(self.cfg), elapsed=self.start.wall(),
                wandb_id=self.start.wandb_id, pretrained=self.start.pretrained, tokenizer=self.start.tokenizer,
            ), path)
        self.last = (path, it)
        return path

    def evaluated(self, it, val_loss):
        """Save after an evaluation, as always_save_checkpoint asks; keep best.pt when val improved."""
        improved = val_loss < self.best_val_loss
        self.best_val_loss = min(self.best_val_loss, val_loss)
        if it > 0 and (improved or self.cfg.always_save_checkpoint or it == self.cfg.max_iters):
            path = self.save(it, True)
            if improved and self.master:
                files.keep_copy(path, os.path.join(self.cfg.out_dir, "best.pt"))

    def where(self):
        return f"{self.last[0]} (iteration {self.last[1]})" if self.last else "none written yet"


class NonFinite:
    """Updates skipped for a non-finite gradient norm, counted on the device and looked at only where
    the loop reads from the device anyway."""

    def __init__(self, policy, device):
        self.policy = policy
        self.count, self.first = torch.zeros((), device=device), torch.full((), -1, device=device)

    def add(self, skipped, it):
        self.count += skipped
        self.first = torch.where((self.first < 0) & (skipped > 0), it, self.first)

    def check(self, checkpoints):
        n = int(self.count.item())
        if n == 0:
            return
        if self.policy == "stop":
            raise UserError(f"non-finite loss or gradient norm at iteration {int(self.first.item())} (its update "
                            f"was not applied); last good checkpoint: {checkpoints.where()}; lower learning_rate, "
                            "or set nonfinite='skip'")
        print(f"{n} update(s) skipped for non-finite gradients, first at iteration {int(self.first.item())}")
        self.count.zero_()
        self.first.fill_(-1)


class Throughput:
    """Milliseconds per iteration over each log window, evaluations left out; the run's mean
    tokens/s leaves out the first window too (compilation, warm-up)."""

    def __init__(self, tokens_per_iter):
        self.tokens_per_iter = tokens_per_iter
        self.t, self.steps, self.first = time.time(), 0, True
        self.tokens, self.seconds = 0, 0.0

    def pause(self):  # evaluation is not training time
        self.t, self.steps = time.time(), 0

    def window(self):
        """Seconds per iteration since the last window."""
        now = time.time()
        dt = (now - self.t) / self.steps
        if not self.first:
            self.tokens += self.tokens_per_iter * self.steps
            self.seconds += now - self.t
        self.first, self.t, self.steps = False, now, 0
        return dt

    def mean(self):
        return round(self.tokens / self.seconds, 1) if self.seconds else None


def git_revision():
    """The code's commit, with '-dirty' when a tracked file outside results/ differs from it (a
    sweep rewrites its own reports under results/ as it runs: they are not the code)."""
    def git(*args):
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                             cwd=os.path.dirname(os.path.abspath(__file__)))
        return out.stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if commit and changed else commit or None


def whole_split_scores(cfg, model, batches, ctx, best_iter):
    """The final model's loss on the whole validation split and, when an earlier evaluation was
    better (best_iter), best.pt's: the scores the sweeps' verdicts use. None for the best model
    when best.pt is not that evaluation's (the best was the initial model, which is not saved)."""
    final, tokens = whole_split_loss(model, batches, "val", ctx)
    best = final
    if best_iter is not None:
        path = os.path.join(cfg.out_dir, "best.pt")
        state = checkpoint.load(path) if os.path.exists(path) else {}
        best = None
        if state.get("iter_num") == best_iter:
            model.load_state_dict(state["model"])
            best = whole_split_loss(model, batches, "val", ctx)[0]
    return dict(best_full_val_loss=best, final_full_val_loss=final, full_val_tokens=tokens)


def finish(cfg, ranks, model, batches, records, start, throughput, ctx):
    """summary.json, the completion mark the sweep looks for, and analysis.json beside it. Every
    rank calls it (FSDP gathers the model for the analysis); rank 0 writes."""
    if cfg.fsdp:  # the analysis folds and hooks MLPs: it runs on an unsharded copy on rank 0
        state, _ = sharding.full_state(model, None, True, ranks.master)
        if not ranks.master:
            return
        model = GPT(model.config)
        model.load_state_dict(state)
        model.to(cfg.device)
    if not ranks.master:
        return
    final, best = records.evals[-1], min(records.evals, key=lambda r: r["val_loss"])
    summary = dict(
        complete=True, activation=cfg.activation, seed=cfg.seed, n_params=model.get_num_params(),
        best_val_loss=best["val_loss"], final_val_loss=final["val_loss"],
        iters=cfg.max_iters, tokens_seen=cfg.max_iters * tokens_per_iter(cfg), tokens_per_s=throughput.mean(),
        wall_s=round(start.wall(), 3), world_size=ranks.world_size, device=cfg.device, torch=torch.__version__,
        git=git_revision(), config=vars(cfg), train_tokens=len(batches.data["train"]), resumed_with=records.resumes,
        # what this process's GPU held at most (the plan's estimate is to be checked against it)
        max_memory_gib=round(torch.cuda.max_memory_allocated() / 2**30, 3) if "cuda" in cfg.device else None,
    )
    # what the MLPs do, measured now, while the model is at hand (reports read this file)
    result = analysis.analyse(model, list(batches.eval("val", analysis.BATCHES)))
    summary.update(whole_split_scores(cfg, model, batches, ctx, best["iter"] if best is not final else None))
    files.write_json(os.path.join(cfg.out_dir, "analysis.json"), result)
    files.write_json(os.path.join(cfg.out_dir, "summary.json"), summary)
    print(f"best val loss {summary['best_val_loss']:.4f}; summary in {cfg.out_dir}/summary.json")
    records.close()


# ------------------------------------------------------------------------------------- the run


def keep_finished_runs(cfg):
    """A new run never overwrites one that out_dir already holds."""
    if cfg.init_from not in ("resume", "auto") and not cfg.eval_only and \
            os.path.exists(os.path.join(cfg.out_dir, "ckpt.pt")):
        raise UserError(f"out_dir={cfg.out_dir!r} already holds a run (ckpt.pt); continue it with --init_from=resume "
                        f"(or auto), or start this one in another out_dir")


def train(cfg, ranks, device_type):
    keep_finished_runs(cfg)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    raw, optimizer, scaler, start = build(cfg, device_type)
    batches = Batches(cfg.dataset, cfg.batch_size, cfg.block_size, cfg.device, raw.config.vocab_size)
    if start.iter:
        print(f"resuming from {cfg.out_dir}/{cfg.checkpoint} at iteration {start.iter}"
              + "".join(f"; {k} {old!r} -> {new!r}" for k, (old, new) in start.changes.items()))
    eval_model = model = torch.compile(raw, mode=cfg.compile_mode) if cfg.compile and compile_works(cfg.device) else raw
    if ranks.ddp and not cfg.fsdp:
        model = DDP(model, device_ids=[cfg.device] if device_type == "cuda" else None, gradient_as_bucket_view=True)
    ctx = autocast(cfg, device_type)
    if cfg.eval_only:  # print the losses; a run's records and checkpoints are left as they are
        losses = evaluate(eval_model, batches, cfg.eval_iters, ctx)
        if ranks.master:
            print(f"step {start.iter}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f} "
                  "(eval_only: nothing written)")
        return 0
    records = Records(cfg, start) if ranks.master else None
    if ranks.master:
        print(json.dumps(vars(cfg), indent=2))
        print(f"parameters: {raw.get_num_params():,}; tokens per iteration: {tokens_per_iter(cfg):,}")
    stop, step = StopRequest(), Step(model, optimizer, scaler, batches, cfg, ranks, ctx)
    checkpoints = Checkpoints(cfg, ranks, raw, optimizer, scaler, start)
    nonfinite = NonFinite(cfg.nonfinite, cfg.device)
    throughput, peak = Throughput(tokens_per_iter(cfg)), plan.datasheet_peak_flops(cfg.device)
    loss_acc = torch.zeros((), device=cfg.device)
    it = start.iter
    while True:
        if (it % cfg.eval_interval == 0 or it == cfg.max_iters) and not (start.evaluated and it == start.iter):
            nonfinite.check(checkpoints)  # before anything is evaluated or saved
            losses = evaluate(eval_model, batches, cfg.eval_iters, ctx)  # every rank: the same batches
            if not all(map(math.isfinite, losses.values())):  # weights no update can bring back
                raise UserError(f"non-finite evaluation loss at iteration {it} ({losses['train']}, {losses['val']}); "
                                f"nothing saved; last good checkpoint: {checkpoints.where()}; lower learning_rate")
            if ranks.master:
                print(f"step {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
                records.log(dict(iter=it, train_loss=losses["train"], val_loss=losses["val"], lr=get_lr(it, cfg),
                                 wall_s=round(start.wall(), 3)))
            checkpoints.evaluated(it, losses["val"])
            throughput.pause()
        if it >= cfg.max_iters:
            break

        loss, norm = step.backward(it)
        loss_acc += loss
        nonfinite.add(step.update(norm), it)
        throughput.steps += 1

        if it % cfg.log_interval == 0 or it == cfg.max_iters - 1:
            if ranks.ddp:  # the iteration's loss over all ranks (gloo has no AVG)
                dist.all_reduce(loss_acc)
                loss_acc /= ranks.world_size
            lossf = loss_acc.item()  # the host-device sync of this iteration
            nonfinite.check(checkpoints)
            dt = throughput.window()
            if ranks.master:
                tokens_per_s, lr = tokens_per_iter(cfg) / dt, get_lr(it, cfg)
                mfu = f", mfu {100 * raw.estimate_mfu(tokens_per_s, peak):.1f}%" if peak else ""
                print(f"iter {it}: loss {lossf:.4f}, lr {lr:.3e}, {dt * 1000:.1f} ms/iter, "
                      f"{tokens_per_s:,.0f} tokens/s{mfu}")
                records.log(dict(iter=it, loss=lossf, lr=lr, ms_per_iter=round(dt * 1000, 3),
                                 tokens_per_s=round(tokens_per_s, 1), wall_s=round(start.wall(), 3)))
        loss_acc.zero_()
        it += 1

        if stop.agreed(ranks, cfg.device):
            nonfinite.check(checkpoints)
            path = checkpoints.save(it, False)
            if ranks.master:
                print(f"stopped by signal {stop.signum} after iteration {it - 1}; saved {path}; "
                      "continue with --init_from=resume (or auto)")
                records.close()
            return 128 + stop.signum

    finish(cfg, ranks, raw, batches, records, start, throughput, ctx)
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
