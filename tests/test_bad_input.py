"""Bad input never costs a run: each case exits non-zero with one line naming the bad value and the
remedy, no traceback, and no partial output. The README's troubleshooting table lists the same cases."""

import os
import shutil

import numpy as np
import pytest
from conftest import run, tiny


@pytest.fixture(scope="module")
def trained(char_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    r = run("train.py", *tiny(out, char_dataset, max_iters=4, eval_interval=2))
    assert r.returncode == 0, r.stderr
    return out


def new_out(tmp):
    return tiny(tmp / "out", CHARS)


def config_file(tmp, text):
    path = tmp / "bad_config.py"
    path.write_text(text)
    return str(path)


def copy_run(trained, tmp, damage):
    shutil.copytree(trained, tmp / "out")
    path = tmp / "out" / "ckpt.pt"
    damage(path)
    return tiny(tmp / "out", CHARS, init_from="resume")


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def scramble(path):
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def short_dataset(tmp):
    folder = tmp / "short"
    folder.mkdir()
    for split in ("train", "val"):
        np.arange(20, dtype=np.uint16).tofile(folder / f"{split}.bin")
    return tiny(tmp / "out", folder)


def latin1(tmp):
    (tmp / "latin1.txt").write_bytes("caf\u00e9 cr\u00e8me\n".encode("latin-1"))
    return ["data/prepare_text.py", str(tmp / "latin1.txt"), "--out", str(tmp / "out")]


CHARS = None  # the char-level dataset, set by the autouse fixture below

# (case, argv builder (tmp, trained) -> script and arguments, extra environment, expected text in the one line)
CASES = [
    ("unknown activation", lambda t, c: ["train.py", *new_out(t), "--activation=gelu3"], {},
     "unknown activation 'gelu3'; valid: gelu, gelu_tanh, relu"),
    ("unknown key in a config file", lambda t, c: ["train.py", config_file(t, "max_iter = 5\n"), *new_out(t)], {},
     "unknown config key 'max_iter' in config file"),
    ("unknown key as a flag", lambda t, c: ["train.py", *new_out(t), "--lerning_rate=1e-3"], {},
     "unknown config key 'lerning_rate' in flag '--lerning_rate=1e-3'; did you mean 'learning_rate'?"),
    ("wrong value type", lambda t, c: ["train.py", *new_out(t), "--max_iters=1.5"], {},
     "max_iters=1.5 in flag '--max_iters=1.5' has type float; expected int"),
    ("missing config file", lambda t, c: ["train.py", "config/no_such_config.py"], {},
     "config file 'config/no_such_config.py' not found"),
    ("config file with a syntax error", lambda t, c: ["train.py", config_file(t, "max_iters = = 5\n")], {},
     "line 1: syntax error"),
    ("missing dataset", lambda t, c: ["train.py", *new_out(t), "--dataset=no_such_dataset"], {},
     "dataset 'no_such_dataset' has no"),
    ("dataset shorter than block_size + 1", lambda t, c: ["train.py", *short_dataset(t)], {},
     "holds 20 tokens, fewer than block_size+1=33"),
    ("resume with another activation",
     lambda t, c: ["train.py", *tiny(c, CHARS, init_from="resume", activation="relu")], {},
     "was trained with activation='gelu' but this run asks for activation='relu'"),
    ("resume with another shape", lambda t, c: ["train.py", *tiny(c, CHARS, init_from="resume", n_embd=64)], {},
     "was trained with n_embd=32 but this run asks for n_embd=64"),
    ("truncated checkpoint", lambda t, c: ["train.py", *copy_run(c, t, truncate)], {}, "is truncated or corrupt"),
    ("corrupt checkpoint", lambda t, c: ["train.py", *copy_run(c, t, scramble)], {}, "is truncated or corrupt"),
    ("unwritable out_dir", lambda t, c: ["train.py", *tiny(c / "summary.json" / "sub", CHARS)], {},
     "cannot write to out_dir="),
    ("accumulation steps not divisible by world size", lambda t, c: ["train.py", *new_out(t)], {"WORLD_SIZE": "3"},
     "gradient_accumulation_steps=2 is not divisible by the world size 3"),
    ("CUDA asked for where there is none", lambda t, c: ["train.py", *new_out(t), "--device=cuda"], {},
     "device='cuda' but CUDA is not available here; use --device=cpu"),
    ("unknown init_from", lambda t, c: ["train.py", *new_out(t), "--init_from=bogus"], {},
     "init_from='bogus' is not valid"),
    ("sample from a missing checkpoint", lambda t, c: ["sample.py", f"--out_dir={t / 'nothing'}", "--device=cpu"],
     {}, "no checkpoint at"),
    ("prompt outside a char-level vocabulary",
     lambda t, c: ["sample.py", f"--out_dir={c}", "--device=cpu", "--start=Zen~"], {},
     "prompt has characters outside the dataset's vocabulary: 'Z~'"),
    ("top_k <= 0", lambda t, c: ["sample.py", f"--out_dir={c}", "--device=cpu", "--top_k=0"], {},
     "top_k=0 must be a positive integer"),
    ("temperature <= 0", lambda t, c: ["sample.py", f"--out_dir={c}", "--device=cpu", "--temperature=0"], {},
     "temperature=0.0 must be > 0"),
    ("non-UTF-8 text for prepare", lambda t, c: latin1(t), {}, "is not UTF-8 text (bad byte at offset 3)"),
]


@pytest.fixture(autouse=True)
def _chars(char_dataset):
    global CHARS
    CHARS = char_dataset


def snapshot(folder):
    return {p: os.path.getmtime(p) for p in folder.rglob("*")} if folder.exists() else {}


@pytest.mark.parametrize("case,argv,env,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, argv, env, expected, trained, tmp_path):
    args = argv(tmp_path, trained)
    before, trained_before = snapshot(tmp_path), snapshot(trained)
    r = run(*args, env=env)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    line = r.stderr.strip()
    assert "\n" not in line and line.startswith("error: "), r.stderr
    assert expected in line
    assert snapshot(tmp_path) == before and snapshot(trained) == trained_before  # nothing written
