"""
Checkpoints that survive crashes and load safely.

Saving writes a temporary file in the target's directory, fsyncs it and renames it over the
target, so a process killed mid-save leaves the previous checkpoint whole. Loading uses
torch.load(weights_only=True): tensors and plain Python data only, never arbitrary objects.
"""

import json
import os
import pickle
import shutil
import zipfile

import torch

from configurator import UserError
from model import GPT, GPTConfig

TMP_SUFFIX = ".tmp"


def atomic_write(path, write):
    """Call write(file) on a temporary file beside path, then move it into place."""
    tmp = f"{path}.{os.getpid()}{TMP_SUFFIX}"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json(path, obj):
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2).encode()))


def save(obj, path):
    atomic_write(path, lambda f: torch.save(obj, f))


def keep_copy(src, dst):
    """Make dst a copy of the finished file src (a hard link where the filesystem allows)."""
    tmp = f"{dst}.{os.getpid()}{TMP_SUFFIX}"
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def remove_stale_temporaries(out_dir):
    """Delete temporary files a killed process left behind."""
    for name in os.listdir(out_dir):
        if name.endswith(TMP_SUFFIX):
            os.remove(os.path.join(out_dir, name))


def load(path):
    """A checkpoint's contents with every tensor on the CPU, wherever it was saved (a GPU run writes
    CUDA tensors). Callers move the model and optimizer state to their own device; mapping the file
    straight onto a device would also move host-side values there. mmap reads tensors from the page
    cache on demand, so the ranks of one node share one copy of a large checkpoint."""
    if not os.path.isfile(path):
        raise UserError(f"no checkpoint at {path}; train one first (python train.py ...) or set out_dir")
    corrupt = (f"checkpoint {path} is truncated or corrupt; resume from another checkpoint (best.pt) "
               "or start a new out_dir")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise UserError(corrupt)
    try:
        return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"refusing to load {path}: it holds objects other than tensors and plain data "
            f"({first[:120]}); only checkpoints written by train.py are loaded"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError):
        raise UserError(corrupt) from None


def build_model(ckpt):
    """The GPT a checkpoint describes, with its weights."""
    model = GPT(GPTConfig(**ckpt["model_args"]))
    model.load_state_dict(ckpt["model"])
    return model
