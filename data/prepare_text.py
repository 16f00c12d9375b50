"""
Turn your own text into train.bin / val.bin for train.py, char-level or GPT-2 BPE.

    python data/prepare_text.py my_corpus.txt --out_dir data/mytext                 # char-level
    python data/prepare_text.py notes/ --out_dir data/mynotes --tokenizer gpt2      # every .txt under notes/

then train with --dataset=mytext (a folder under data/) or --dataset=path/to/folder.
The first (1 - val_fraction) of the text trains, the rest validates. Files are uint16 token ids;
char-level datasets also get meta.json (their characters in id order), which train.py reads and
checkpoints carry.
The whole text is held in memory: for a corpus of many documents or gigabytes, use
data/openwebtext/prepare.py --files instead.
"""

import os
import sys

import numpy as np

# Run as a file, Python puts this script's folder on sys.path, not the repository's root: put it there.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from training import files, tokenizer
from training.errors import ArgumentParser, UserError, run_main


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
    text = "\n".join(tokenizer.read_text(f) for f in files)
    if not text:
        raise UserError(f"no text in {', '.join(paths)}; the corpus is empty")
    return text


def check_out(path):
    """A one-line error unless path can be the output folder (existing or not)."""
    if not path:
        raise UserError("--out_dir is empty; give the output folder, e.g. data/mytext")
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f"--out_dir={path!r} cannot be a folder: {existing} is a file")
    if not os.access(existing, os.W_OK):
        raise UserError(f"--out_dir={path!r} cannot be written: {existing} is not writable")


SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"


def fetch_shakespeare(folder):
    """Tiny Shakespeare's text: folder/input.txt if present, else downloaded there."""
    check_out(folder)
    path = os.path.join(folder, "input.txt")
    if not os.path.exists(path):
        import urllib.request

        try:
            with urllib.request.urlopen(SHAKESPEARE_URL, timeout=30) as r:
                raw = r.read()
        except OSError as e:
            raise UserError(f"could not download {SHAKESPEARE_URL} ({e}); put the text at {path} and "
                            "run again") from None
        os.makedirs(folder, exist_ok=True)
        files.write_bytes(path, raw)
    return tokenizer.read_text(path)


def to_uint16(ids):
    """ids as the uint16 array of a .bin file, or a UserError if one does not fit."""
    arr = np.asarray(ids, dtype=np.int64)
    if arr.size and arr.max() >= 2**16:
        raise UserError(f"token id {arr.max()} does not fit uint16 (max 65535); use a vocabulary of at most "
                        "65536 tokens")
    return arr.astype(np.uint16)


def prepare(text, out_dir, kind="char", val_fraction=0.1):
    """Split text (first part train, rest val), tokenize, and write the dataset; return token counts."""
    if not 0 < val_fraction < 1:
        raise UserError(f"val_fraction={val_fraction} must be between 0 and 1")
    if kind not in ("char", "gpt2"):
        raise UserError(f"tokenizer {kind!r} is not known; choose char or gpt2")
    check_out(out_dir)
    cut = int(len(text) * (1 - val_fraction))
    if kind == "char":
        chars = tokenizer.char_vocab(text)
        encode, vocab_size = tokenizer.Tokenizer(chars).encode, len(chars)
    else:
        chars, enc = None, tokenizer.gpt2_encoding()
        encode, vocab_size = enc.encode_ordinary, enc.n_vocab
    splits = {"train": to_uint16(encode(text[:cut])), "val": to_uint16(encode(text[cut:]))}
    for split, ids in splits.items():
        if not ids.size:
            raise UserError(f"the {split} split is empty: {len(text)} characters are too few for "
                            f"val_fraction={val_fraction}; use more text")
    writers = {os.path.join(out_dir, f"{s}.bin"): ids.tofile for s, ids in splits.items()}
    if chars is not None:
        vocab = tokenizer.vocab_json(chars).encode()
        writers[os.path.join(out_dir, tokenizer.VOCAB_FILE)] = lambda f: f.write(vocab)
    os.makedirs(out_dir, exist_ok=True)
    files.atomic_writes(writers)  # all of them or none
    tokenizer.remove_stale_vocabulary(out_dir, keep=tokenizer.VOCAB_FILE if chars is not None else None)
    counts = {s: len(ids) for s, ids in splits.items()}
    print(f"vocab size: {vocab_size:,}; train has {counts['train']:,} tokens; val has {counts['val']:,} tokens")
    return counts


def shakespeare_main(script_doc, here, kind):
    """The command line of data/shakespeare*/prepare.py: --out_dir DIR, by default the script's folder."""

    def main(argv):
        p = ArgumentParser(description=script_doc.strip().splitlines()[0])
        p.add_argument("--out_dir", "--out", default=here,
                       help="folder of input.txt and the outputs (default: beside the script)")
        out_dir = p.parse_args(argv).out_dir
        prepare(fetch_shakespeare(out_dir), out_dir, kind)

    run_main(main)


def main(argv):
    p = ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("inputs", nargs="+", help="text files, or folders of .txt files")
    p.add_argument("--out_dir", "--out", required=True, help="output folder, e.g. data/mytext")
    p.add_argument("--tokenizer", default="char", help="char (default) or gpt2")
    p.add_argument("--val_fraction", type=float, default=0.1, help="the last fraction of the text, for val")
    args = p.parse_args(argv)
    prepare(read_inputs(args.inputs), args.out_dir, args.tokenizer, args.val_fraction)


if __name__ == "__main__":
    run_main(main)
