"""
Tokenizers: a dataset's characters, a BPE trained for it, or GPT-2's BPE (tiktoken), one place for all.

A char-level dataset keeps its vocabulary in meta.json (its characters, in id order), one with its
own BPE keeps it in tokenizer.json (the `tokenizers` library's format); a dataset with neither is
GPT-2 BPE. Checkpoints carry their tokenizer (Tokenizer.state), so a model samples
and exports with the vocabulary it was trained on, whatever its dataset folder holds later.
Datasets prepared before meta.json have meta.pkl, which is read without running any code.
"""

import json
import os
import pickle

from training.errors import UserError

EOT = 50256  # GPT-2's <|endoftext|>
GPT2_VOCAB = 50304  # GPT-2's 50257 tokens padded up to a multiple of 64, for speed
VOCAB_FILE = "meta.json"
BPE_FILE = "tokenizer.json"
BPE_EOT = "<|endoftext|>"  # a dataset BPE's end-of-document token, as GPT-2's


def gpt2_encoding():
    """GPT-2's BPE. tiktoken's 'r50k_base' holds exactly GPT-2's ranks, pattern and <|endoftext|>
    in one file, so a single cached file (TIKTOKEN_CACHE_DIR) makes it work offline."""
    import tiktoken

    try:
        return tiktoken.get_encoding("r50k_base")
    except Exception as e:
        raise UserError(
            f"cannot load GPT-2's BPE ranks ({type(e).__name__}); connect to the internet once, or set "
            "TIKTOKEN_CACHE_DIR to a folder holding r50k_base.tiktoken named "
            "0ea1e91bbb3a60f729a8dc8f777fd2fc07cd8df4"
        ) from None


def read_text(path):
    """A UTF-8 text file's contents, or a one-line error saying how to convert it."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise UserError(f"cannot read {path} ({e.strerror}); give a text file") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text (bad byte at offset {e.start}); convert it, e.g. "
                        f"iconv -f latin1 -t utf-8") from None


class Tokenizer:
    """chars: the characters of a char-level vocabulary in id order; bpe_json: a dataset's own BPE
    (tokenizer.json's text); neither: GPT-2's BPE."""

    def __init__(self, chars=None, bpe_json=None):
        self.chars, self.bpe_json = chars, bpe_json
        self.stoi = {c: i for i, c in enumerate(chars)} if chars is not None else None
        self.bpe = None

    @property
    def model_vocab_size(self):
        if self.bpe_json is not None:
            return self.encoding().get_vocab_size()
        return len(self.chars) if self.chars is not None else GPT2_VOCAB

    @property
    def eot(self):
        """The end-of-document token's id (BPE only)."""
        return self.encoding().token_to_id(BPE_EOT) if self.bpe_json is not None else EOT

    @property
    def state(self):
        """Plain data for a checkpoint."""
        if self.bpe_json is not None:
            return {"kind": "bpe", "json": self.bpe_json}
        return {"kind": "char", "chars": "".join(self.chars)} if self.chars is not None else {"kind": "gpt2"}

    @classmethod
    def from_state(cls, state):
        if state["kind"] == "bpe":
            return cls(bpe_json=state["json"])
        return cls(list(state["chars"]) if state["kind"] == "char" else None)

    def fits(self, vocab_size):
        """Whether a model with vocab_size embeddings reads this tokenizer's ids as they were meant:
        as many as the characters or the dataset BPE's tokens, or GPT-2's BPE (padded or not)."""
        if self.chars is not None or self.bpe_json is not None:
            return vocab_size == self.model_vocab_size
        return vocab_size > EOT

    def __str__(self):
        if self.bpe_json is not None:
            return f"the dataset's {self.model_vocab_size:,}-token BPE"
        return f"{len(self.chars)} characters" if self.chars is not None else "GPT-2's BPE"

    def encoding(self):
        if self.bpe is None:
            if self.bpe_json is not None:
                from tokenizers import Tokenizer as BPE

                self.bpe = BPE.from_str(self.bpe_json)
            else:
                self.bpe = gpt2_encoding()
        return self.bpe

    def encode(self, text):
        if self.bpe_json is not None:
            return self.encoding().encode(text).ids
        if self.chars is None:
            return self.encoding().encode(text, allowed_special={"<|endoftext|>"})
        unknown = sorted(set(text) - set(self.stoi))
        if unknown:
            raise UserError(f"prompt has characters outside the model's vocabulary: {''.join(unknown)!r}; "
                            f"use only these: {''.join(self.chars)!r}")
        return [self.stoi[c] for c in text]

    def decode(self, ids):
        if self.bpe_json is not None:
            return self.encoding().decode(ids, skip_special_tokens=False)
        if self.chars is None:
            return self.encoding().decode(ids)
        return "".join(self.chars[i] for i in ids)


def char_vocab(text):
    """The characters of text, sorted: a char-level vocabulary."""
    return sorted(set(text))


def vocab_json(chars):
    return json.dumps({"vocab_size": len(chars), "itos": chars}, ensure_ascii=False)


class NoCodeUnpickler(pickle.Unpickler):
    """Reads pickles of plain dicts, lists, strings and numbers; anything that would import a name
    (and so could run code) is refused."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"it refers to {module}.{name}")


def read_chars(data_dir):
    """A char-level dataset's characters in id order; None for a GPT-2 BPE dataset."""
    path = os.path.join(data_dir, VOCAB_FILE)
    legacy = os.path.join(data_dir, "meta.pkl")
    try:
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                itos = json.load(f)["itos"]
        elif os.path.exists(legacy):
            path = legacy
            with open(path, "rb") as f:
                meta = NoCodeUnpickler(f).load()
            itos = [meta["itos"][i] for i in range(len(meta["itos"]))]
        else:
            return None
        if not (isinstance(itos, list) and itos and all(isinstance(c, str) and len(c) == 1 for c in itos)
                and len(set(itos)) == len(itos)):
            raise ValueError("its characters are not a list of distinct single characters")
    except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError, pickle.UnpicklingError) as e:
        raise UserError(f"{path} is not a valid vocabulary ({type(e).__name__}: {str(e)[:100]}); prepare the "
                        "dataset again (its prepare.py, or data/prepare_text.py)") from None
    return itos


def remove_stale_vocabulary(out_dir, keep=None):
    """Delete vocabularies other than `keep` from a dataset folder just written: a stale one would be
    read instead of GPT-2's BPE, or instead of the new characters or BPE."""
    for name in (VOCAB_FILE, "meta.pkl", BPE_FILE):
        if name != keep and os.path.exists(os.path.join(out_dir, name)):
            os.remove(os.path.join(out_dir, name))


def for_dataset(data_dir):
    path = os.path.join(data_dir, BPE_FILE)
    if os.path.exists(path):
        return Tokenizer(bpe_json=read_text(path))
    return Tokenizer(read_chars(data_dir))
