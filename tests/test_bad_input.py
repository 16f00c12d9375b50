"""Bad input never costs a run: each case exits non-zero with one line naming the bad value and the
remedy, no traceback, and no partial output. The README's troubleshooting table lists the same cases."""

import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from conftest import run, tiny


@pytest.fixture(scope="module")
def trained(char_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    r = run("train.py", *tiny(out, char_dataset, max_iters=4, eval_interval=2))
    assert r.returncode == 0, r.stderr
    return out


def new_out(tmp):
    return tiny(tmp / "out", CHARS)


def config_file(tmp, text, raw=None):
    path = tmp / "bad_config.py"
    path.write_bytes(raw if raw is not None else text.encode())
    return str(path)


def sweep_file(tmp, text):
    path = tmp / "sweep_bad.py"
    path.write_text(f"name = 'bad'\nbase = 'config/train_shakespeare_char_cpu.py'\nactivations = ['gelu']\n"
                    f"overrides = dict(dataset={str(CHARS)!r})\nout_dir = {str(tmp / 'results')!r}\n{text}")
    return str(path)


def odd_train_bin(tmp):
    folder = tmp / "odd"
    shutil.copytree(CHARS, folder)
    with open(folder / "train.bin", "ab") as f:
        f.write(b"\x00")
    return folder


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
    return ["data/prepare_text.py", str(tmp / "latin1.txt"), "--out_dir", str(tmp / "out")]


def dataset_with(tmp, name, content):
    """A copy of the char dataset whose vocabulary file `name` holds `content`."""
    folder = tmp / "data"
    shutil.copytree(CHARS, folder)
    (folder / "meta.json").unlink()
    (folder / name).write_bytes(content)
    return folder


class Payload:
    """Unpickled, this would create the file `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def crafted_meta_pkl(tmp):
    return dataset_with(tmp, "meta.pkl", pickle.dumps({"vocab_size": 3, "itos": Payload(tmp / "ran")}))


def nanogpt_checkpoint(trained, tmp):
    """The trained run's checkpoint as upstream nanoGPT writes one: no activation, compiled weights."""
    ckpt = torch.load(trained / "ckpt.pt", weights_only=True)
    del ckpt["model_args"]["activation"]
    ckpt["model"] = {f"_orig_mod.{k}": v for k, v in ckpt["model"].items()}
    (tmp / "out").mkdir()
    torch.save(ckpt, tmp / "out" / "ckpt.pt")
    return tmp / "out"


def bare_state_dict(trained, tmp):
    (tmp / "out").mkdir()
    torch.save(torch.load(trained / "ckpt.pt", weights_only=True)["model"], tmp / "out" / "ckpt.pt")
    return tmp / "out"


def damaged_sweep(tmp):
    """A sweep whose one run has a summary.json cut short."""
    run_dir = tmp / "results" / "bad" / "runs" / "gelu-s1"
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text('{"complete": tr')
    return sweep_file(tmp, "")


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
    ("resume past max_iters", lambda t, c: ["train.py", *tiny(c, CHARS, init_from="resume", max_iters=2)], {},
     "is at iteration 4, past max_iters=2; to train it further give --max_iters (and --lr_decay_iters) above 4, "
     "or --eval_only=True to evaluate it"),
    ("score at no evaluation", lambda t, c: ["train.py", *new_out(t), "--eval_interval=5", "--score_iters=[10, 12]"],
     {}, "score_iters=[10, 12]: 12 is not an evaluation's iteration; give positive multiples of eval_interval=5"),
    ("plan for an unknown GPU", lambda t, c: ["train.py", *new_out(t), "--dry_run=True", "--gpu=B300"], {},
     "gpu='B300' is not valid; choose auto or one of H200, H100"),
    ("train into an out_dir that is a file",
     lambda t, c: ["train.py", *tiny(c / "summary.json", CHARS)], {}, "summary.json' is a file; give a folder"),
    ("a report over a damaged summary.json", lambda t, c: ["sweep.py", damaged_sweep(t), "--report_only=True"], {},
     "summary.json (Expecting value: line 1 column 14 (char 13)): the run's records are damaged"),
    ("µP from GPT-2's weights", lambda t, c: ["train.py", *new_out(t), "--init_from=gpt2", "--mup_base_width=64"], {},
     "mup_base_width=64 trains from µP's initialisation, but init_from='gpt2' starts from GPT-2's weights"),
    ("bench with fsdp", lambda t, c: ["bench.py", *new_out(t), "--fsdp=True"], {},
     "fsdp=True shards a model over torchrun's ranks; bench.py times one process"),
    ("report.py run on its own", lambda t, c: ["-m", "experiment.report", "config/sweep_claim_cpu.py"], {},
     "experiment/report.py is what sweep.py writes reports with; write or rewrite one with python sweep.py SWEEPFILE "
     "--report_only=True"),
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
     "prompt has characters outside the model's vocabulary: 'Z~'"),
    ("top_k <= 0", lambda t, c: ["sample.py", f"--out_dir={c}", "--device=cpu", "--top_k=0"], {},
     "top_k=0 must be a positive integer"),
    ("temperature <= 0", lambda t, c: ["sample.py", f"--out_dir={c}", "--device=cpu", "--temperature=0"], {},
     "temperature=0.0 must be > 0"),
    ("non-UTF-8 text for prepare", lambda t, c: latin1(t), {}, "is not UTF-8 text (bad byte at offset 3)"),
    ("negative seed over an existing run", lambda t, c: ["train.py", *tiny(c, CHARS, seed=-1)], {},
     "seed=-1 must be >= 0"),
    ("negative learning rate", lambda t, c: ["train.py", *new_out(t), "--learning_rate=-1"], {},
     "learning_rate=-1.0 must be > 0"),
    ("beta2 out of range", lambda t, c: ["train.py", *new_out(t), "--beta2=1.5"], {}, "beta2=1.5 must be in [0, 1)"),
    ("n_embd not divisible by n_head", lambda t, c: ["train.py", *new_out(t), "--n_head=3"], {},
     "n_embd=32 is not divisible by n_head=3"),
    ("n_embd not divisible by n_head, dry run", lambda t, c: ["train.py", *new_out(t), "--n_head=3", "--dry_run=True"],
     {}, "n_embd=32 is not divisible by n_head=3"),
    ("n_embd not divisible by n_head, bench", lambda t, c: ["bench.py", *new_out(t), "--n_head=3"], {},
     "n_embd=32 is not divisible by n_head=3"),
    ("unknown checkpoint name", lambda t, c: ["train.py", *new_out(t), "--checkpoint=last.pt"], {},
     "checkpoint='last.pt' is not valid; choose one of ckpt.pt, best.pt"),
    ("MPS asked for where there is none", lambda t, c: ["train.py", *new_out(t), "--device=mps"], {},
     "device='mps' but Apple's MPS is not available here"),
    ("non-UTF-8 prompt file", lambda t, c: ["sample.py", f"--out_dir={c}", "--device=cpu",
                                            f"--start=FILE:{latin1(t)[1]}"], {}, "is not UTF-8 text"),
    ("corrupt meta.json", lambda t, c: ["train.py", *tiny(t / "out", dataset_with(t, "meta.json", b"{\"itos\": 5"))],
     {}, "meta.json is not a valid vocabulary (JSONDecodeError"),
    ("meta.pkl that would run code, dry run", lambda t, c: ["train.py", *tiny(t / "out", crafted_meta_pkl(t)),
                                                           "--dry_run=True"], {},
     "meta.pkl is not a valid vocabulary (UnpicklingError: it refers to"),
    ("resume with another seed", lambda t, c: ["train.py", *tiny(c, CHARS, init_from="resume", seed=3)], {},
     "was trained with seed=1337 but this run asks for seed=3"),
    ("resume with another dropout", lambda t, c: ["train.py", *tiny(c, CHARS, init_from="resume", dropout=0.1)], {},
     "was trained with dropout=0.0 but this run asks for dropout=0.1"),
    ("resume a nanoGPT checkpoint", lambda t, c: ["train.py", *tiny(nanogpt_checkpoint(c, t), CHARS,
                                                                    init_from="resume")], {},
     "was written by nanoGPT: sample.py and training/hf.py read it"),
    ("sample a bare state_dict", lambda t, c: ["sample.py", f"--out_dir={bare_state_dict(c, t)}", "--device=cpu"], {},
     "holds a bare state_dict, without the model_args"),
    ("GPT-2 on a char-level dataset", lambda t, c: ["train.py", *new_out(t), "--init_from=gpt2"], {},
     "gpt2 has a 50257-token vocabulary, but dataset"),
    ("train.bin of an odd number of bytes", lambda t, c: ["train.py", *tiny(t / "out", odd_train_bin(t))], {},
     "not a whole number of uint16 token ids"),
    ("config file that is not UTF-8", lambda t, c: ["train.py", config_file(t, "", b"max_iters = 5 # caf\xe9\n"),
                                                   *new_out(t)], {}, "bad_config.py is not UTF-8 text"),
    ("config file that calls sys.exit", lambda t, c: ["train.py", config_file(t, "import sys\nsys.exit(0)\n"),
                                                     *new_out(t)], {}, "failed: SystemExit"),
    ("a new run over an existing one", lambda t, c: ["train.py", *tiny(c, CHARS)], {},
     "already holds a run (ckpt.pt); continue it with --init_from=resume"),
    ("sample no samples", lambda t, c: ["sample.py", f"--out_dir={c}", "--device=cpu", "--num_samples=0"], {},
     "num_samples=0 must be a positive integer"),
    ("sample with an unknown dtype", lambda t, c: ["sample.py", f"--out_dir={c}", "--device=cpu", "--dtype=fp8"], {},
     "dtype='fp8' is not valid; choose one of auto, float32, bfloat16, float16"),
    ("export beneath a file",
     lambda t, c: ["-m", "training.hf", f"--out_dir={c}", f"--to={c / 'summary.json' / 'gpt2'}"], {},
     "summary.json is not a folder"),
    ("export a bare state_dict",
     lambda t, c: ["-m", "training.hf", f"--out_dir={bare_state_dict(c, t)}", f"--to={t / 'hf'}"],
     {}, "holds a bare state_dict"),
    ("sweep with a negative seed", lambda t, c: ["sweep.py", sweep_file(t, "seeds = [-1]\n")], {},
     "run gelu-s-1: seed=-1 must be >= 0"),
    ("sweep into an out_dir that is a file", lambda t, c: ["sweep.py", sweep_file(t, ""),
                                                            f"--out_dir={c / 'summary.json'}"], {},
     "summary.json' is a file; give a folder"),
    ("tokenizer benchmark of an empty corpus", lambda t, c: ["data/bench_tokenize.py", "--mb", "0"], {},
     "--mb=0.0 must be > 0"),
    ("bench with a negative thread count", lambda t, c: ["bench.py", *new_out(t), "--threads=-1"], {},
     "threads=-1 must be >= 0"),
]


@pytest.fixture(autouse=True)
def _chars(char_dataset):
    global CHARS
    CHARS = char_dataset


def snapshot(folder):
    """Every file and its modification time, but for the lock a run takes on its out_dir (not a
    record: it names whoever last tried to run there)."""
    return {p: os.path.getmtime(p) for p in folder.rglob("*") if p.is_file() and p.name != ".lock"} \
        if folder.exists() else {}


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
    assert not (tmp_path / "ran").exists()  # no code from a data file ran
