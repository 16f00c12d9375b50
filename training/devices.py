"""
The device a run computes on: 'auto' resolved, its precision (autocast), the order of attention
kernels, whether torch.compile works here, and what the GPU held at most.
"""

import os
import platform
from contextlib import nullcontext
from types import SimpleNamespace

import torch

from training import rundir
from training.errors import UserError
from training.settings import validate_device


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


def peak_memory_gib(device):
    """What the run's GPU held at most (torch.cuda.max_memory_allocated of that GPU), in GiB; None off CUDA."""
    return round(torch.cuda.max_memory_allocated(device.name) / 2**30, 3) if device.type == "cuda" else None
