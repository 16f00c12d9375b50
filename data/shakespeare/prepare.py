"""
Tiny Shakespeare with GPT-2's BPE: writes train.bin and val.bin (uint16) beside this file.
Uses input.txt here when present, else downloads it. Offline, GPT-2's ranks must be in
TIKTOKEN_CACHE_DIR (see README).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from prepare_text import UserError, fetch_shakespeare, prepare  # noqa: E402

if __name__ == "__main__":
    try:
        prepare(fetch_shakespeare(HERE), HERE, "gpt2")
    except UserError as e:
        sys.exit(f"error: {e}")
