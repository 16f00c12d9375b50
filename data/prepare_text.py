"""
Turn your own text into train.bin / val.bin for train.py, char-level or GPT-2 BPE.

    python data/prepare_text.py my_corpus.txt --out data/mytext                 # char-level
    python data/prepare_text.py notes/ --out data/mynotes --tokenizer gpt2      # every .txt under notes/

then train with --dataset=mytext (a folder under data/) or --dataset=path/to/folder.
The first (1 - val_fraction) of the text trains, the rest validates. Files are uint16 token ids;
char-level datasets also get meta.pkl (vocab_size, stoi, itos), which train.py and sample.py read.
"""

import argparse
import os
import pickle
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tokenizer  # noqa: E402
from configurator import UserError  # noqa: E402


def read_text(path):
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text (bad byte at offset {e.start}); convert it, e.g. "
                        f"iconv -f latin1 -t utf-8") from None


def read_inputs(paths):
    """Text of the given files and of every .txt file under the given folders, in sorted order."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            files += sorted(os.path.join(d, n) for d, _, names in os.walk(path) for n in names if n.endswith(".txt"))
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise UserError(f"input {path!r} not found; give a text file or a folder of .txt files")
    text = "\n".join(read_text(f) for f in files)
    if not text:
        raise UserError(f"no text in {', '.join(paths)}; the corpus is empty")
    return text


SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"


def fetch_shakespeare(folder):
    """Tiny Shakespeare's text: folder/input.txt if present, else downloaded there."""
    path = os.path.join(folder, "input.txt")
    if not os.path.exists(path):
        import urllib.request

        try:
            with urllib.request.urlopen(SHAKESPEARE_URL, timeout=30) as r:
                raw = r.read()
        except OSError as e:
            raise UserError(f"could not download {SHAKESPEARE_URL} ({e}); put the text at {path} and "
                            "run again") from None
        with open(path + ".tmp", "wb") as f:
            f.write(raw)
        os.replace(path + ".tmp", path)
    return read_text(path)


def write_bin(path, ids):
    arr = np.asarray(ids, dtype=np.int64)
    if arr.size and arr.max() >= 2**16:
        raise UserError(f"token id {arr.max()} does not fit uint16 (max 65535); use a smaller vocabulary")
    tmp = path + ".tmp"
    arr.astype(np.uint16).tofile(tmp)
    return tmp


def prepare(text, out_dir, kind="char", val_fraction=0.1):
    """Split text (first part train, rest val), tokenize, and write the dataset; return token counts."""
    if not 0 < val_fraction < 1:
        raise UserError(f"val_fraction={val_fraction} must be between 0 and 1")
    if kind not in ("char", "gpt2"):
        raise UserError(f"tokenizer {kind!r} is not known; choose char or gpt2")
    os.makedirs(out_dir, exist_ok=True)
    cut = int(len(text) * (1 - val_fraction))
    if kind == "char":
        meta = tokenizer.char_vocab(text)
        encode = lambda s: [meta["stoi"][c] for c in s]  # noqa: E731
    else:
        meta, enc = None, tokenizer.gpt2_encoding()
        encode = enc.encode_ordinary
    splits = {"train": encode(text[:cut]), "val": encode(text[cut:])}
    # All outputs are written to temporary files first and renamed only when every one is complete.
    written = {os.path.join(out_dir, f"{s}.bin"): write_bin(os.path.join(out_dir, f"{s}.bin"), ids)
               for s, ids in splits.items()}
    meta_path = os.path.join(out_dir, "meta.pkl")
    if meta is not None:
        with open(meta_path + ".tmp", "wb") as f:
            pickle.dump(meta, f)
        written[meta_path] = meta_path + ".tmp"
    elif os.path.exists(meta_path):
        os.remove(meta_path)  # a stale char vocabulary would be read instead of GPT-2's
    for final, tmp in written.items():
        os.replace(tmp, final)
    counts = {s: len(ids) for s, ids in splits.items()}
    vocab = meta["vocab_size"] if meta else 50257
    print(f"vocab size: {vocab:,}; train has {counts['train']:,} tokens; val has {counts['val']:,} tokens")
    return counts


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("inputs", nargs="+", help="text files, or folders of .txt files")
    p.add_argument("--out", required=True, help="output folder, e.g. data/mytext")
    p.add_argument("--tokenizer", default="char", help="char (default) or gpt2")
    p.add_argument("--val_fraction", type=float, default=0.1)
    args = p.parse_args(argv)
    prepare(read_inputs(args.inputs), args.out, args.tokenizer, args.val_fraction)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except UserError as e:
        sys.exit(f"error: {e}")
