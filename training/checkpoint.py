"""
Checkpoints: what one holds, what a run must keep to resume from one, and writing and reading them
so that they survive crashes and load safely.

ckpt.pt is a run's latest state and best.pt an independent copy of the one of its best evaluation.
Both hold the model's weights and shape (model_args), AdamW's and the GradScaler's state, the
iteration and whether it was evaluated, the best val loss so far, the settings (config), the wall
time so far, the wandb id, the GPT-2 the run started from and its tokenizer. No random-number state:
every random draw is keyed by (seed, iteration, micro-step), so the iteration is the whole position.

Saving writes a temporary file in the target's directory, fsyncs it and renames it over the
target (files.py), so a process killed mid-save leaves the previous checkpoint whole. Loading uses
torch.load(weights_only=True): tensors and plain Python data only, never arbitrary objects.
"""

import dataclasses
import math
import os
import pickle
import time
import zipfile
from dataclasses import asdict, dataclass, field

import torch

from model import GPT, MUP_KEYS, GPTConfig
from training import files, rundir, settings, sharding
from training.batches import dataset_dir
from training.errors import UserError


def save(obj, path):
    files.atomic_write(path, lambda f: torch.save(obj, f), needs=tensor_bytes(obj))


def tensor_bytes(obj):
    """Bytes of the tensors in a nested dict/list: about what torch.save writes."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(map(tensor_bytes, obj.values()))
    if isinstance(obj, (list, tuple)):
        return sum(map(tensor_bytes, obj))
    return 0


def load(path):
    """A checkpoint's contents with every tensor on the CPU, wherever it was saved (a GPU run writes
    CUDA tensors). Callers move the model and optimizer state to their own device; mapping the file
    straight onto a device would also move host-side values there. mmap reads tensors from the page
    cache on demand, so the ranks of one node share one copy of a large checkpoint."""
    if not os.path.isfile(path):
        raise UserError(f"no checkpoint at {path}; train one first (python train.py ...) or set out_dir")
    folder, name = os.path.split(path)
    other = rundir.CKPT if name == rundir.BEST else rundir.BEST
    fallback = (f"resume from {other} with --checkpoint={other}, or start a new out_dir"
                if os.path.isfile(os.path.join(folder, other)) else "start a new out_dir")
    corrupt = f"checkpoint {path} is truncated or corrupt; {fallback}"
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise UserError(corrupt)
    try:
        ckpt = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"refusing to load {path}: it holds objects other than tensors and plain data "
            f"({first[:120]}); only checkpoints written by train.py are loaded"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError):
        raise UserError(corrupt) from None
    return upgraded(ckpt, path)


def upgraded(ckpt, path):
    """A checkpoint of this project or of nanoGPT, in this project's terms; anything else is refused."""
    if not isinstance(ckpt, dict) or not {"model", "model_args"} <= set(ckpt):
        if isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
            raise UserError(f"{path} holds a bare state_dict, without the model_args to build a GPT from; save "
                            "dict(model=state_dict, model_args=...) as train.py does")
        raise UserError(f"{path} is not a checkpoint of train.py or nanoGPT (it has no 'model' and 'model_args')")
    if not isinstance(ckpt["model_args"], dict) or not isinstance(ckpt["model"], dict):
        raise UserError(f"{path} is not a checkpoint of train.py or nanoGPT (its model_args or model is not a dict)")
    if "activation" not in ckpt["model_args"]:
        # nanoGPT's checkpoints name no activation: its MLP is nn.GELU(), the exact GELU. Without flash
        # attention it kept a causal mask buffer named attn.bias, which SDPA does not need.
        ckpt = {**ckpt, "model_args": {**ckpt["model_args"], "activation": "gelu"}, "nanogpt": True,
                "model": {k: v for k, v in ckpt["model"].items() if not k.endswith(".attn.bias")}}
    # a torch.compile'd model's state_dict (nanoGPT saved those) prefixes every key with '_orig_mod.'
    return {**ckpt, "model": {k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()},
            "model_args": with_mup_defaults(ckpt["model_args"])}


def with_mup_defaults(args):
    """model_args as this model.py reads them: checkpoints from before µP trained without it, and µP
    checkpoints from before its multipliers scaled attention by 1/d_head, which α_attn =
    1/sqrt(d_head) gives now (the base's head being the model's own)."""
    defaults = {f.name: f.default for f in dataclasses.fields(GPTConfig) if f.name in MUP_KEYS}
    if args.get("mup_base_width") and "mup_attn_mult" not in args:
        defaults["mup_attn_mult"] = 1 / math.sqrt(args["n_embd"] // args["n_head"])
    return {**defaults, **args}


def build_model(ckpt):
    """The GPT a checkpoint describes, with its weights."""
    try:
        model = GPT(GPTConfig(**ckpt["model_args"]))
        model.load_state_dict(ckpt["model"])
    except (TypeError, ValueError, RuntimeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"the checkpoint's model_args and weights do not make a GPT of model.py ({first[:160]})") \
            from None
    return model


# ------------------------------------------------------------------------------ what a run keeps


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
# (The activation and, for a GPT-2, the shape are checked against the checkpoint's model itself.)
NOT_A_CHANGE = ("init_from", "checkpoint", "out_dir", "eval_only", "dry_run", "activation")
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
    """The model, saved state and Start of out_dir's checkpoint, after checking that this run may
    continue it. The model's activation is the checkpoint's unless the settings name one (which must
    be the same), and a fine-tuned GPT-2's shape is GPT-2's, whatever the settings' model keys say."""
    path = rundir.path(cfg.out_dir, cfg.checkpoint)
    state = load(path)
    if state.get("nanogpt"):
        raise UserError(f"{path} was written by nanoGPT: sample.py and training/hf.py read it (its MLP is the exact "
                        "GELU), but a run resumes only from train.py's checkpoints; to fine-tune it, export it "
                        "(python -m training.hf --to=DIR) and train with --init_from=DIR")
    missing = [k for k in RESUMABLE if k not in state]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}: it is not a checkpoint train.py wrote, so a run "
                        "cannot resume from it; start a new out_dir (--init_from=scratch)")
    saved = state["model_args"]
    wanted = dict(block_size=cfg.block_size, activation=settings.activation(cfg, saved["activation"]))
    if not state.get("pretrained"):
        wanted.update(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, bias=cfg.bias,
                      vocab_size=tok.model_vocab_size, **{key: getattr(cfg, key) for key in MUP_KEYS})
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
    if start.iter > cfg.max_iters and not cfg.eval_only:
        raise UserError(f"{path} is at iteration {start.iter}, past max_iters={cfg.max_iters}; to train it further "
                        f"give --max_iters (and --lr_decay_iters) above {start.iter}, or --eval_only=True to "
                        "evaluate it")
    return build_model(state), state, start


class Checkpoints:
    """ckpt.pt (the latest state) and best.pt (an independent copy of the best evaluation's), and
    the best val loss they are judged by. Every rank calls them (FSDP gathers the shards); rank 0
    writes."""

    def __init__(self, cfg, ranks, model, optimizer, scaler, start):
        self.cfg, self.master, self.model, self.optimizer, self.scaler = cfg, ranks.master, model, optimizer, scaler
        self.start, self.best_val_loss = start, start.best_val_loss
        self.last = (rundir.path(cfg.out_dir, cfg.checkpoint), start.iter) if start.iter else None

    def save(self, it, evaluated):
        path = rundir.path(self.cfg.out_dir, rundir.CKPT)
        model_state, optimizer_state = sharding.full_state(self.model, self.optimizer, self.cfg.fsdp, self.master)
        if self.master:
            save(dict(
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
                files.keep_copy(path, rundir.path(self.cfg.out_dir, rundir.BEST))

    def where(self):
        return f"{self.last[0]} (iteration {self.last[1]})" if self.last else "none written yet"
