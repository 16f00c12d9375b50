"""
Tokenizers: char-level (a dataset's meta.pkl) or GPT-2's BPE (tiktoken), one place for both.
"""

import os
import pickle

from configurator import UserError

EOT = 50256  # GPT-2's <|endoftext|>


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


def char_vocab(text):
    """meta.pkl contents for a char-level vocabulary of text."""
    chars = sorted(set(text))
    return {"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": {c: i for i, c in enumerate(chars)}}


def load(data_dir):
    """(encode, decode) for a dataset: its meta.pkl when it has one, else GPT-2's BPE."""
    meta_path = os.path.join(data_dir, "meta.pkl")
    if not os.path.exists(meta_path):
        enc = gpt2_encoding()
        return (lambda s: enc.encode(s, allowed_special={"<|endoftext|>"})), enc.decode
    with open(meta_path, "rb") as f:
        meta = pickle.load(f)
    stoi, itos = meta["stoi"], meta["itos"]

    def encode(s):
        unknown = sorted(set(s) - set(stoi))
        if unknown:
            raise UserError(f"prompt has characters outside the dataset's vocabulary: {''.join(unknown)!r}; "
                            f"use only characters from {meta_path}")
        return [stoi[c] for c in s]

    return encode, lambda ids: "".join(itos[i] for i in ids)
