"""Dataset preparation: run each script as a file (python data/shakespeare_char/prepare.py)."""
