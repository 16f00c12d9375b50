"""
Tiny Shakespeare, char-level: writes train.bin, val.bin (uint16) and meta.json (the characters in
id order) beside this file. Uses input.txt here when present, else downloads it. The first 90% of the
text trains, the rest validates: 65 symbols, 1,003,854 and 111,540 tokens.

    python data/shakespeare_char/prepare.py              # then: python train.py config/train_shakespeare_char_cpu.py
    python data/shakespeare_char/prepare.py --out_dir DIR    # input.txt and outputs in DIR instead
"""

import os
import sys

# Run as a file, Python puts this script's folder on sys.path, not the repository's root: put it there.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from data.prepare_text import shakespeare_main

HERE = os.path.dirname(os.path.abspath(__file__))

if __name__ == "__main__":
    shakespeare_main(__doc__, HERE, "char")
