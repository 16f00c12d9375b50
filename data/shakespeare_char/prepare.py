"""
Tiny Shakespeare, char-level: writes train.bin, val.bin (uint16) and meta.pkl beside this file.
Uses input.txt here when present, else downloads it.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from prepare_text import UserError, fetch_shakespeare, prepare  # noqa: E402

if __name__ == "__main__":
    try:
        prepare(fetch_shakespeare(HERE), HERE, "char")
    except UserError as e:
        sys.exit(f"error: {e}")
