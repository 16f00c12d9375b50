"""
Checkpoints that survive crashes and load safely.

Saving writes a temporary file in the target's directory, fsyncs it and renames it over the
target (files.py), so a process killed mid-save leaves the previous checkpoint whole. Loading uses
torch.load(weights_only=True): tensors and plain Python data only, never arbitrary objects.
"""

import os
import pickle
import zipfile

import torch

import files
from configurator import UserError
from model import GPT, GPTConfig

def save(obj, path):
    files.atomic_write(path, lambda f: torch.save(obj, f))


def load(path):
    """A checkpoint's contents with every tensor on the CPU, wherever it was saved (a GPU run writes
    CUDA tensors). Callers move the model and optimizer state to their own device; mapping the file
    straight onto a device would also move host-side values there. mmap reads tensors from the page
    cache on demand, so the ranks of one node share one copy of a large checkpoint."""
    if not os.path.isfile(path):
        raise UserError(f"no checkpoint at {path}; train one first (python train.py ...) or set out_dir")
    folder, name = os.path.split(path)
    other = "ckpt.pt" if name == "best.pt" else "best.pt"
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
    return {**ckpt, "model": {k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()}}


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
