"""
How fast data/openwebtext/prepare.py turns text into tokens, and how much memory it takes.

    python data/bench_tokenize.py                      # a 100 MB corpus, with --num_proc 1 and 2
    python data/bench_tokenize.py --mb 300 --num_proc 1 2 4

Generates a deterministic corpus of web-page-sized documents (jsonl), runs the prepare script on it
offline as a user would (a fresh Hugging Face cache each run, so nothing is reused), and prints per
run: seconds end to end (load, split, tokenize, write), MB of text per second, and peak memory.
Peak memory is given two ways: the RSS of the largest single process (ru_maxrss, which also counts
the pages of memory-mapped files it has read), and the PSS of all its processes together, sampled
every 0.1 s, with the anonymous part (Pss_Anon: what cannot be dropped and re-read from disk when
memory runs short).
"""

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

# Run as a file, Python puts this script's folder on sys.path, not the repository's root: put it there.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from training import tokenizer
from training.errors import ArgumentParser, UserError, run_main

HERE = os.path.dirname(os.path.abspath(__file__))

PREPARE = os.path.join(HERE, "openwebtext", "prepare.py")


def vocabulary():
    """Lower-case words of GPT-2's vocabulary in merge order, which is roughly most frequent first."""
    enc = tokenizer.gpt2_encoding()
    pieces = (enc.decode_single_token_bytes(i) for i in range(enc.n_vocab - 1))
    return np.array([p[1:].decode() for p in pieces if re.fullmatch(rb" [a-z]{2,}", p)], dtype=object)


def write_corpus(path, megabytes, seed=0):
    """Documents of Zipf-distributed words in sentences and paragraphs, until the file holds `megabytes` MB."""
    rng = np.random.default_rng(seed)
    words = vocabulary()
    written, docs = 0, 0
    with open(path, "w", encoding="utf-8") as f:
        while written < megabytes * 10**6:
            n = int(np.clip(rng.lognormal(6.3, 0.9), 20, 20000))  # words per document: median ~550
            ids = np.minimum(rng.zipf(1.2, n) - 1, len(words) - 1)
            tokens = words[ids]
            compound = rng.random(n) < 0.1  # words BPE must split
            tokens[compound] += words[rng.integers(0, len(words), compound.sum())]
            tokens[rng.random(n) < 0.07] += "."
            tokens[rng.random(n) < 0.01] += "\n\n"
            text = " ".join(tokens).replace("\n\n ", "\n\n")
            line = json.dumps({"text": text}) + "\n"
            f.write(line)
            written += len(line.encode())
            docs += 1
    return docs


def tree_memory(pid):
    """(Pss, Pss_Anon) summed over pid and its descendants, in bytes. PSS splits the pages that forked
    workers share with their parent among them, so the sum counts each page once."""
    totals = [0, 0]
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            with open(f"/proc/{p}/task/{p}/children") as f:
                stack += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended while we looked
        for i, key in enumerate(("Pss", "Pss_Anon")):
            totals[i] += int(fields.get(key, "0 kB").split()[0]) * 1024
    return totals


def run(corpus, work, num_proc):
    """Run the prepare script once; return (seconds, largest process's peak RSS, tree peak RSS, tree peak anon)."""
    cache = os.path.join(work, f"hf-{num_proc}")
    env = {**os.environ, "HF_HOME": cache, "HF_DATASETS_CACHE": os.path.join(cache, "datasets"),
           "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, PREPARE, "--files", corpus, "--out_dir", os.path.join(work, f"out-{num_proc}"),
           "--num_proc", str(num_proc), "--cache_dir", os.path.join(cache, "datasets")]
    peaks = [0, 0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def sample():
        while proc.returncode is None:
            peaks[:] = np.maximum(peaks, tree_memory(proc.pid)).tolist()
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)  # its rusage: the largest of it and its waited-for children
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    sampler.join()
    summary = proc.stdout.read()
    if proc.returncode:
        sys.exit(f"error: {' '.join(cmd)} failed with exit status {proc.returncode}")
    return seconds, usage.ru_maxrss * 1024, peaks[0], peaks[1], summary


def main(argv):
    p = ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--mb", type=float, default=100, help="corpus size in MB (10^6 bytes) of jsonl")
    p.add_argument("--num_proc", type=int, nargs="+", default=[1, 2], help="process counts to compare")
    args = p.parse_args(argv)
    if not args.mb > 0:
        raise UserError(f"--mb={args.mb} must be > 0")
    if min(args.num_proc) < 1:
        raise UserError(f"--num_proc={args.num_proc} must all be at least 1")
    tokenizer.gpt2_encoding()  # a one-line error now, rather than a failed run later
    with tempfile.TemporaryDirectory(prefix="bench_tokenize-") as work:
        corpus = os.path.join(work, "corpus.jsonl")
        t0 = time.perf_counter()
        docs = write_corpus(corpus, args.mb)
        size = os.path.getsize(corpus)
        seconds = time.perf_counter() - t0
        print(f"corpus: {docs:,} documents, {size / 1e6:.1f} MB of jsonl, generated in {seconds:.0f} s")
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or 'unknown CPU'}, "
              f"Python {platform.python_version()}")
        print("num_proc  seconds   MB/s  peak RSS, largest process  peak PSS, all processes  of which anonymous")
        for n in args.num_proc:
            seconds, largest, tree, anon, summary = run(corpus, work, n)
            print(f"{n:8d} {seconds:8.1f} {size / 1e6 / seconds:6.2f} {largest / 2**20:21,.0f} MiB "
                  f"{tree / 2**20:20,.0f} MiB {anon / 2**20:14,.0f} MiB")
        print(summary.strip())


if __name__ == "__main__":
    run_main(main)
