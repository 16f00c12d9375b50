"""
A run's data and its batches.

Every batch is a function of its key alone. The global batch of a training iteration is drawn from
a generator keyed by (seed, iteration), and each DDP rank takes its slice of the micro-batches, so N
ranks with A accumulation steps see exactly what 1 rank sees with N*A, and a resumed run sees the
batches it would have seen. Dropout is seeded per global micro-batch in the same way, and
evaluation batches are keyed by a fixed seed, so every run is scored on the same held-out text.
"""

import os

import numpy as np
import torch

from training.errors import UserError

DATA_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
EVAL_SEED = 0  # every run is evaluated on the same held-out batches, whatever its seed
TRAIN, EVAL_TRAIN, EVAL_VAL, DROPOUT = range(4)  # streams of keyed random numbers


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
            how = f"python {script}" if os.path.isfile(script) else "python data/prepare_text.py (see docs/data.md)"
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
