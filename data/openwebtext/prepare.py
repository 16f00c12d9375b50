"""
OpenWebText, or any corpus of documents, with GPT-2's BPE: train.bin and val.bin (uint16) for train.py.

    python data/openwebtext/prepare.py                                   # OpenWebText, from the Hugging Face Hub
    python data/openwebtext/prepare.py --dataset NAME --config CONFIG    # another dataset on the Hub
    python data/openwebtext/prepare.py --files docs/ --out_dir data/mydocs   # local .txt/.jsonl/.parquet, offline too

Every document is encoded with encode_ordinary and followed by <|endoftext|> (50256), so the model
sees where one document ends and the next begins. A few documents (--val_size, at least one) are held
out for val, chosen with a fixed seed. Tokens are written shard by shard, so memory stays bounded
whatever the size of the corpus, into train.bin.tmp and val.bin.tmp, renamed only once both are complete.
"""

import functools
import math
import os
import re
import sys

import numpy as np
from tqdm import tqdm

# Run as a file, Python puts this script's folder on sys.path, not the repository's root: put it there.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from data.prepare_text import check_out
from training import files, tokenizer
from training.errors import ArgumentParser, UserError, run_main

HERE = os.path.dirname(os.path.abspath(__file__))

# datasets' own builder for each kind of local file; a .txt file is one document
BUILDERS = {".txt": "text", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
# Tokens read and written at a time (16 MB as int32): this, not the corpus, sets the memory needed.
SHARD_TOKENS = 2**22
# --files converts the corpus to Arrow and tokenizes it in a cache of datasets': here, not in a hidden
# folder of the home directory, since it takes about twice the corpus's size (see docs/data.md).
LOCAL_CACHE = os.path.join(os.path.dirname(HERE), "hf_cache")
LOCAL_HINT = "prepare local files instead: --files FILE_OR_FOLDER (.txt, .jsonl or .parquet)"


def local_files(paths):
    """(builder, files): the given files, and every file of a known kind under the given folders."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            files += sorted(os.path.join(d, n) for d, _, names in os.walk(path) for n in names
                            if os.path.splitext(n)[1] in BUILDERS)
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise UserError(f"--files: {path!r} not found; give .txt, .jsonl or .parquet files, or folders of them")
    if not files:
        raise UserError(f"--files: no .txt, .json, .jsonl or .parquet files in {', '.join(paths)}")
    kinds = {}
    for f in files:
        ext = os.path.splitext(f)[1]
        if ext not in BUILDERS:
            raise UserError(f"--files: {f!r} is not .txt, .json, .jsonl or .parquet; convert it or leave it out")
        kinds.setdefault(BUILDERS[ext], f)
    if len(kinds) > 1:
        raise UserError(f"--files mixes formats ({', '.join(kinds.values())}); prepare one format per run")
    if sum(os.path.getsize(f) for f in files) == 0:
        raise UserError(f"--files: no text in {', '.join(paths)}; the corpus is empty")
    return kinds.popitem()[0], files


def cause(e):
    """'Type: message' of the innermost cause of e, also when it was raised in one of datasets' workers."""
    while e.__cause__ or e.__context__:
        e = e.__cause__ or e.__context__
    if type(e).__name__ == "RemoteTraceback":
        # Only the worker's traceback text came back; its first exception line is the innermost cause.
        found = re.search(r"^[\w.]+(Error|Exception): .*", str(e), re.M)
        return found.group(0) if found else "an error in a worker process"
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"


def load_local(paths, num_proc, cache_dir):
    import datasets

    builder, files = local_files(paths)
    options = {"sample_by": "document"} if builder == "text" else {}
    try:
        return datasets.load_dataset(builder, data_files=files, split="train", num_proc=min(num_proc, len(files)),
                                     cache_dir=cache_dir, **options)
    except Exception as e:
        why = cause(e)
        if why.startswith("UnicodeDecodeError"):
            for f in files:
                tokenizer.read_text(f)  # raises the error that names the file and the bad byte
        raise UserError(f"--files: cannot read {', '.join(paths)} as {builder}: {why}") from None


def load_hub(name, config, split, num_proc, cache_dir):
    import datasets

    try:
        return datasets.load_dataset(name, config, split=split, num_proc=num_proc, cache_dir=cache_dir)
    except ConnectionError:
        if datasets.config.HF_HUB_OFFLINE:
            raise UserError(f"dataset {name!r} is not in the Hugging Face cache and offline mode (HF_DATASETS_OFFLINE "
                            f"or HF_HUB_OFFLINE) forbids downloading it; {LOCAL_HINT}") from None
        raise UserError(f"cannot reach dataset {name!r} on the Hugging Face Hub; check the network, or "
                        f"{LOCAL_HINT}") from None
    except datasets.exceptions.DatasetNotFoundError:
        raise UserError(f"dataset {name!r} is not on the Hugging Face Hub; check --dataset, or {LOCAL_HINT}") from None
    except Exception as e:
        # a config or split that does not exist, a dataset that needs a loading script, ...
        raise UserError(f"cannot load dataset {name!r} (config {config}, split {split}): {cause(e)}") from None


def check_text_column(ds, column, source):
    if column not in ds.column_names:
        raise UserError(f"{source} has no column {column!r}; its columns are {', '.join(ds.column_names)}; "
                        "choose one with --text_column")
    if getattr(ds.features[column], "dtype", None) not in ("string", "large_string"):
        raise UserError(f"column {column!r} of {source} holds {ds.features[column]}, not text; "
                        "choose a text column with --text_column")


def split_documents(ds, val_size, seed, source):
    """{'train': ..., 'val': ...}: at least one document each, val chosen at random with the seed."""
    if len(ds) < 2:
        raise UserError(f"{source} has {len(ds)} document(s); it needs at least 2, one for train and one for val")
    n_val = min(len(ds) - 1, max(1, math.ceil(val_size * len(ds))))
    parts = ds.train_test_split(test_size=n_val, seed=seed, shuffle=True)
    return {"train": parts["train"], "val": parts["test"]}


def tokenize(batch, column):
    enc = tokenizer.gpt2_encoding()  # tiktoken keeps it: loaded once per process
    texts = batch[column]
    if None in texts:
        raise ValueError(f"a document has no text (its {column!r} is null); drop it or give it text")
    ids = [enc.encode_ordinary(text) + [tokenizer.EOT] for text in texts]
    return {"ids": ids, "len": [len(x) for x in ids], "bytes": [len(text.encode()) for text in texts]}


def tokenize_split(ds, column, num_proc, name):
    import datasets

    features = datasets.Features({"ids": datasets.List(datasets.Value("int32")), "len": datasets.Value("int64"),
                                  "bytes": datasets.Value("int64")})
    num_proc = min(num_proc, len(ds))
    try:
        return ds.map(tokenize, fn_kwargs={"column": column}, batched=True, remove_columns=ds.column_names,
                      features=features, num_proc=num_proc if num_proc > 1 else None,  # 1 would still fork a worker
                      desc=f"tokenizing {name}")
    except Exception as e:  # raised in a worker, it arrives wrapped: name its cause
        raise UserError(f"cannot tokenize the {name} documents: {cause(e)}") from None


def column_numpy(ds, column):
    return ds.with_format("arrow")[:][column].to_numpy()


def write_split(ds, f):
    """Write the token ids of ds's documents, in order, to the open file f as uint16, one shard at a
    time; return the count."""
    import pyarrow.compute as pc

    starts = np.concatenate([[0], np.cumsum(column_numpy(ds, "len"))])  # each document's first token
    total = int(starts[-1])
    # Shards end at document boundaries, each about SHARD_TOKENS long.
    bounds = np.unique(np.append(np.searchsorted(starts, np.arange(0, total, SHARD_TOKENS)), len(ds)))
    f.truncate(2 * total)  # sized up front: each shard fills its own window
    f.flush()
    with tqdm(total=total, unit="tok", unit_scale=True, desc=f"writing {os.path.basename(f.name)}") as bar:
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            ids = pc.list_flatten(ds.with_format("arrow")[a:b]["ids"]).to_numpy()
            if ids.max() >= 2**16:
                raise UserError(f"token id {ids.max()} does not fit uint16 (max 65535); this script writes "
                                "GPT-2 BPE ids, which all fit")
            # A window per shard, unmapped after it, so written pages do not pile up in this process.
            window = np.memmap(f.name, dtype=np.uint16, mode="r+", offset=2 * int(starts[a]), shape=(len(ids),))
            window[:] = ids
            window.flush()
            del window
            bar.update(len(ids))
    return total


def write_outputs(splits, out_dir):
    """Write train.bin and val.bin, both or neither; return their token counts."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {name: os.path.join(out_dir, f"{name}.bin") for name in splits}
    counts = files.atomic_writes({paths[name]: functools.partial(write_split, ds) for name, ds in splits.items()})
    tokenizer.remove_stale_vocabulary(out_dir)
    return {name: counts[path] for name, path in paths.items()}


def prepare(args):
    """Load, split, tokenize and write the corpus; return {split: (documents, tokens, text bytes)}."""
    if not 0 < args.val_size < 1:
        raise UserError(f"--val_size={args.val_size} must be a fraction between 0 and 1")
    if args.num_proc < 1:
        raise UserError(f"--num_proc={args.num_proc} must be at least 1")
    if args.seed < 0:
        raise UserError(f"--seed={args.seed} must be >= 0")
    check_out(args.out_dir)
    if args.files and args.dataset:
        raise UserError(f"--dataset={args.dataset} and --files both name a corpus; give one of them")
    tokenizer.gpt2_encoding()  # fail now, before any download, if GPT-2's ranks cannot be had
    cache_dir = args.cache_dir or (os.environ.get("HF_DATASETS_CACHE") or LOCAL_CACHE if args.files else None)
    if args.files:
        ds, source = load_local(args.files, args.num_proc, cache_dir), ", ".join(args.files)
    else:
        name = args.dataset or "openwebtext"
        ds, source = load_hub(name, args.config, args.split, args.num_proc, cache_dir), repr(name)
    check_text_column(ds, args.text_column, source)
    if len(ds) == 0:
        raise UserError(f"{source} holds no documents; the corpus is empty")
    splits = split_documents(ds, args.val_size, args.seed, source)
    splits = {name: tokenize_split(part, args.text_column, args.num_proc, name) for name, part in splits.items()}
    text_bytes = {name: int(column_numpy(part, "bytes").sum()) for name, part in splits.items()}
    if sum(text_bytes.values()) == 0:
        raise UserError(f"every document in {source} is empty; the corpus is empty")
    counts = write_outputs(splits, args.out_dir)
    summary = {name: (len(part), counts[name], text_bytes[name]) for name, part in splits.items()}
    for name, (docs, tokens, nbytes) in summary.items():
        print(f"{name}: {docs:,} document{'s' * (docs != 1)}, {tokens:,} tokens, {nbytes:,} bytes of text "
              f"-> {os.path.join(args.out_dir, name + '.bin')}")
    if cache_dir:
        print(f"datasets' Arrow cache of this corpus: {folder_bytes(cache_dir) / 2**20:,.0f} MiB in {cache_dir} "
              "(a second run over the same files reuses it; delete it when done)")
    return summary


def folder_bytes(folder):
    return sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(folder) for n in names)


def usable_cpus():
    # A container or taskset may allow fewer CPUs than the machine has; not every OS can say so.
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parse_args(argv):
    p = ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--dataset", help="a dataset on the Hugging Face Hub (default: openwebtext)")
    p.add_argument("--config", default=None, help="the Hub dataset's configuration, if it has several")
    p.add_argument("--split", default="train", help="the Hub dataset's split to read (default: train)")
    p.add_argument("--files", nargs="+", help="local .txt (one document each), .json/.jsonl or .parquet files, "
                                              "or folders of them, instead of --dataset")
    p.add_argument("--text_column", default="text", help="the column holding each document's text")
    p.add_argument("--val_size", type=float, default=0.0005, help="fraction of documents held out for val")
    p.add_argument("--seed", type=int, default=2357, help="seed of the train/val split")
    p.add_argument("--num_proc", type=int, default=usable_cpus(), help="processes for loading and tokenizing "
                                                                    "(default: the CPUs this process may use)")
    p.add_argument("--out_dir", "--out", default=HERE, help="output folder (default: beside this script)")
    p.add_argument("--cache_dir", default=None, help="datasets' Arrow cache (default for --files: $HF_DATASETS_CACHE "
                                                     "if set, else data/hf_cache; for the Hub: the Hugging Face cache)")
    return p.parse_args(argv)


def main(argv):
    prepare(parse_args(argv))


if __name__ == "__main__":
    run_main(main)
