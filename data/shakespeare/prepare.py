"""
Tiny Shakespeare with GPT-2's BPE: writes train.bin and val.bin (uint16) beside this file.
Uses input.txt here when present, else downloads it. The first 90% of the text trains, the rest
validates: 301,966 and 36,059 tokens. Offline, GPT-2's ranks must be in TIKTOKEN_CACHE_DIR (see README).

    python data/shakespeare/prepare.py              # then: python train.py config/train_shakespeare_bpe.py
    python data/shakespeare/prepare.py --out_dir DIR    # input.txt and outputs in DIR instead
"""

import os
import sys

# Run as a file, Python puts this script's folder on sys.path, not the repository's root: put it there.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from data.prepare_text import shakespeare_main

HERE = os.path.dirname(os.path.abspath(__file__))

if __name__ == "__main__":
    shakespeare_main(__doc__, HERE, "gpt2")
