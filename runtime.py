"""
What the scripts share about running a model: the device and its precision, compilation, the data
and its batches, and stopping on a signal. train.py, sample.py, bench.py and gpu checks import it;
it imports nothing of theirs.

Every batch is a function of its key alone. The global batch of a training iteration is drawn from
a generator keyed by (seed, iteration), and each DDP rank takes its slice of the micro-batches, so N
ranks with A accumulation steps see exactly what 1 rank sees with N*A, and a resumed run sees the
batches it would have seen. Dropout is seeded per global micro-batch in the same way, and
evaluation batches are keyed by a fixed seed, so every run is scored on the same held-out text.
"""

import os
import signal
from contextlib import nullcontext

import numpy as np
import torch
import torch.distributed as dist

from configurator import UserError

DATA_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
EVAL_SEED = 0  # every run is evaluated on the same held-out batches, whatever its seed
TRAIN, EVAL_TRAIN, EVAL_VAL, DROPOUT = range(4)  # streams of keyed random numbers
DEVICE_CHOICES = {"dtype": ("auto", "float32", "bfloat16", "float16"),
                  "matmul_precision": ("highest", "high", "medium")}


# ----------------------------------------------------------------------------------------- device


def validate_device(cfg):
    """dtype and matmul_precision, checked before any device is looked at."""
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


def autocast(cfg, device_type):
    return nullcontext() if cfg.dtype == "float32" else torch.autocast(device_type, dtype=getattr(torch, cfg.dtype))


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


# ------------------------------------------------------------------------------------------- data


def dataset_dir(name):
    return name if os.sep in name or name.startswith(".") else os.path.join(DATA_ROOT, name)


def check_dataset(dataset):
    """A one-line error unless the dataset is prepared (its train.bin and val.bin exist)."""
    data_dir = dataset_dir(dataset)
    for split in ("train", "val"):
        path = os.path.join(data_dir, f"{split}.bin")
        if not os.path.isfile(path):
            script = os.path.join(data_dir, "prepare.py")
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
        self.data = {}
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
