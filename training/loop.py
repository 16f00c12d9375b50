"""
What a training process does, for train.py and bench.py alike: build the model, optimizer and
GradScaler as a run starts them (from scratch, a checkpoint or a GPT-2), one iteration (Step), the
learning-rate schedule, skipping updates with non-finite gradients, and evaluation (the periodic one
on fixed batches, and the whole validation split once a run ends).
"""

import importlib.util
import math
import os
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from model import ACTIVATIONS, GPT, MUP_KEYS, GPTConfig
from training import checkpoint, hf, rundir, settings, sharding, tokenizer
from training.batches import dataset_dir, seed_dropout
from training.errors import UserError


def check(cfg):
    """Every setting checked before anything is read or written: the settings' own checks, then the
    choices whose valid values other modules own: the activation (model.py's registry) and init_from
    (a GPT-2 of hf.py's, or a folder). The plan checks its GPU when it plans."""
    settings.validate(cfg)
    if cfg.activation and cfg.activation not in ACTIVATIONS:
        raise UserError(f"unknown activation {cfg.activation!r}; valid: {', '.join(ACTIVATIONS)}")
    hf.check_init_from(cfg.init_from, settings.INITS)


def model_config(cfg, vocab_size):
    """The GPTConfig of a new model from the settings."""
    return GPTConfig(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, block_size=cfg.block_size,
                     bias=cfg.bias, vocab_size=vocab_size, dropout=cfg.dropout, activation=settings.activation(cfg),
                     **{key: getattr(cfg, key) for key in MUP_KEYS})


def planned_config(cfg):
    """The GPTConfig a run will train, from its config alone (no weights read), for the dry run."""
    if cfg.init_from in settings.INITS:
        return model_config(cfg, tokenizer.for_dataset(dataset_dir(cfg.dataset)).model_vocab_size)
    # None: the activation GPT-2 was trained with, which hf reads from its config
    config = hf.pretrained_config(cfg.init_from, settings.activation(cfg, None), cfg.dropout)
    config.block_size = min(config.block_size, cfg.block_size)  # build() crops the context the same way
    return config


def from_gpt2(cfg, tok):
    """A published GPT-2 (by name, or a transformers folder) with its own shape, its MLPs computing
    the activation the settings name (by default the one it was trained with)."""
    published = hf.pretrained_config(cfg.init_from)  # from config.json or GPT-2's shapes, no weights
    if not tok.fits(published.vocab_size):
        raise UserError(f"{cfg.init_from} has a {published.vocab_size}-token vocabulary, but dataset "
                        f"{cfg.dataset!r} is tokenized with {tok}; fine-tune it on data in its own tokens")
    if cfg.block_size > published.block_size:
        raise UserError(f"block_size={cfg.block_size} exceeds the {published.block_size} positions of "
                        f"{cfg.init_from}; use block_size <= {published.block_size}")
    trained_with = published.activation  # gelu_tanh for OpenAI's
    activation = settings.activation(cfg, trained_with)
    model = hf.load_pretrained(cfg.init_from, activation=activation, dropout=cfg.dropout)
    if activation != trained_with:
        print(f"surgery: {cfg.init_from} was trained with {trained_with}; its MLPs now use {activation}")
    if cfg.block_size < model.config.block_size:
        model.crop_block_size(cfg.block_size)
    return model


def fused_loss_kernel(setting, device_type, say=print):
    """The fused loss a run uses (a name in model.FUSED_LOSSES), or None for the plain loss. 'auto'
    takes Liger's on CUDA where liger-kernel is installed (requirements-gpu.txt); a kernel asked for
    by name that cannot run here falls back to the plain loss, saying why."""
    liger = device_type == "cuda" and importlib.util.find_spec("liger_kernel") is not None
    if setting == "auto":
        return "liger" if liger else None
    if setting == "liger" and not liger:
        say("fused_loss='liger' needs a CUDA device and liger-kernel (pip install -r requirements-gpu.txt); "
            "computing the loss from the logits")
        return None
    if setting == "torch" and not hasattr(F, "linear_cross_entropy"):
        say(f"fused_loss='torch' needs torch.nn.functional.linear_cross_entropy (torch >= 2.13, here "
            f"{torch.__version__}); computing the loss from the logits")
        return None
    return None if setting == "off" else setting


def build(cfg, device):
    """What a training process holds as a run starts: SimpleNamespace(model, optimizer, scaler on the
    run's device; start, where it starts; init_from, how: 'scratch', 'resume' or a GPT-2, with
    'auto' decided; tokenizer, of its data). The model's config is what the code decided about the
    model: the activation and, for a checkpoint or a GPT-2, the shape."""
    tok = tokenizer.for_dataset(dataset_dir(cfg.dataset))
    init_from = cfg.init_from
    if init_from == "auto":
        init_from = "resume" if os.path.exists(rundir.path(cfg.out_dir, cfg.checkpoint)) else "scratch"
    state = None
    if init_from == "resume":
        model, state, start = checkpoint.resume(cfg, tok)
    elif init_from != "scratch":
        model, start = from_gpt2(cfg, tok), checkpoint.Start(pretrained=init_from, tokenizer=tok.state)
    else:
        # The initial weights are a function of the seed alone: the same on every rank, and the same
        # for every ungated activation, so runs that differ only in the activation start alike.
        torch.manual_seed(cfg.seed)
        model, start = GPT(model_config(cfg, tok.model_vocab_size)), checkpoint.Start(tokenizer=tok.state)
    model.config.dropout = cfg.dropout
    model.activation_checkpointing = cfg.activation_checkpointing
    model.fused_loss = fused_loss_kernel(cfg.fused_loss, device.type)
    model.to(device.name)
    if cfg.fsdp:
        sharding.shard(model, device.dtype)  # before the optimizer, which must hold the sharded parameters
    optimizer = model.configure_optimizers(cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2))
    scaler = torch.amp.GradScaler(device.type, enabled=device.dtype == "float16")
    if state is not None:
        sharding.load_optimizer(model, optimizer, state["optimizer"], cfg.fsdp)
        scaler.load_state_dict(state["scaler"])
    return SimpleNamespace(model=model, optimizer=optimizer, scaler=scaler, start=start, init_from=init_from,
                           tokenizer=tok)


def compiled(model, cfg, compiling):
    """The model as the training loop calls it: compiled (in cfg.compile_mode) when `compiling`, the
    caller having checked that torch.compile works here. Under FSDP, dynamo skips FSDP's hooks, so
    a whole compiled model would fall back to eager around them: each block's forward and the head
    (final LayerNorm, output layer and loss) are compiled on their own instead, as torchtitan does,
    the hooks gathering the weights running eagerly between them."""
    if not compiling:
        return model
    if cfg.fsdp:
        for block in model.transformer.h:
            block.forward = torch.compile(block.forward, mode=cfg.compile_mode)
        model.head = torch.compile(model.head, mode=cfg.compile_mode)
        return model
    return torch.compile(model, mode=cfg.compile_mode)


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

    def __call__(self, it, lr):
        """Iteration it at learning rate lr (get_lr's, which the caller logs too): forward and backward
        over this rank's micro-batches, unscale, clip, update. Returns (mean micro-batch loss on this
        rank, gradient norm before clipping, 1.0 if the update was skipped else 0.0), all on the
        device: nothing here waits for it."""
        cfg = self.cfg
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)  # µP's hidden matrices learn at base/width of it
        loss_sum = 0.0
        for micro, x, y in self.batches.train(cfg.seed, it, cfg.gradient_accumulation_steps, self.ranks.rank,
                                              self.ranks.world_size):
            if cfg.dropout > 0:
                seed_dropout(cfg.seed, it, micro)
            if self.ranks.ddp:  # reduce gradients over the ranks on the last micro-step only
                sharding.sync_gradients(self.model, cfg.fsdp, (micro + 1) % self.per_rank == 0)
            with self.ctx:
                # the logits are not kept: held through backward, they cost (micro-batch x vocab) more memory
                loss = self.model(x, y)[1] / self.per_rank
            loss_sum += loss.detach()
            self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        norm = sharding.local(norm, cfg.fsdp)
        return loss_sum, norm, self.update(norm)

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
                # a copy: under CUDA graphs (compile_mode='reduce-overhead') the next call's replay
                # overwrites the memory of this one's output
                losses.append(model(x, y)[1].clone())
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
