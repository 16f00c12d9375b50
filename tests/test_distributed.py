"""DDP under a real torchrun with gloo on CPU computes what one process computes; the dry-run plan
of the GPT-2 configs; and the distributed bad inputs."""

import re
import socket

import pytest
from conftest import read_metrics, run, tiny

TORCHRUN = ("-m", "torch.distributed.run")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def single(char_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    r = run("train.py", *tiny(out, char_dataset, gradient_accumulation_steps=4, dropout=0.1, max_iters=20))
    assert r.returncode == 0, r.stderr
    return read_metrics(out)


@pytest.mark.parametrize("launch", ["standalone", "rendezvous"])
def test_two_ranks_match_one_process(launch, single, char_dataset, tmp_path):
    """4 global micro-steps: 2 ranks x 2 against 1 process x 4, dropout on. Batches and dropout masks
    are keyed by global micro-step, so only the order of float additions differs (the gradient
    all-reduce, and the loss average): losses agree to float32 rounding, rtol 1e-5."""
    if launch == "standalone":
        flags = ["--standalone"]
    else:  # the multi-node launch, with one node on this machine
        flags = ["--nnodes=1", "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{free_port()}", "--rdzv_id=t"]
    r = run(*TORCHRUN, *flags, "--nproc_per_node=2", "train.py",
            *tiny(tmp_path, char_dataset, gradient_accumulation_steps=4, dropout=0.1, max_iters=20))
    assert r.returncode == 0, r.stderr
    ddp = read_metrics(tmp_path)
    assert [(m["iter"], "val_loss" in m) for m in ddp] == [(m["iter"], "val_loss" in m) for m in single]
    for a, b in zip(single, ddp):  # the evaluation's train and val losses, the log line's loss and gradient norm
        for key in ("val_loss", "train_loss") if "val_loss" in a else ("loss", "grad_norm"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=0), (a["iter"], key)
    # only rank 0 writes: one checkpoint, one set of records, and no stray files
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "analysis.json", "best.pt", "ckpt.pt", "config.json",
                                                          "metrics.jsonl", "summary.json"]
    assert r.stdout.count("best val loss") == 1


def test_accumulation_not_divisible_by_world_size(char_dataset, tmp_path):
    r = run(*TORCHRUN, "--standalone", "--nproc_per_node=2", "train.py",
            *tiny(tmp_path, char_dataset, gradient_accumulation_steps=3))
    assert r.returncode != 0
    assert "error: gradient_accumulation_steps=3 is not divisible by the world size 2; use a multiple of 2" in r.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("flag,message", [
    ("--backend=mpi", "error: backend='mpi' is not valid; choose one of auto, nccl, gloo"),
    ("--backend=nccl", "error: backend='nccl' needs CUDA but device='cpu'; use --backend=gloo or auto"),
])
def test_backend_errors(flag, message, char_dataset, tmp_path):
    r = run("train.py", *tiny(tmp_path, char_dataset), flag)
    assert r.returncode == 1 and r.stderr.strip() == message


@pytest.mark.parametrize("name", ["gpt2_xl_gelu", "gpt2_xl_relu", "gpt2_xl_none",
                                  "gpt2_124m_gelu", "gpt2_124m_relu", "gpt2_124m_none"])
def test_dry_run_plans_gpt2_configs(name):
    r = run("train.py", f"config/{name}.py", "--dry_run=True", "--world_size=8", "--gpu=H100")
    assert r.returncode == 0, r.stderr
    out = r.stdout

    def figure(label):  # the DDP column: the run as configured
        return float(re.search(rf"^  {label}\s+([\d.]+)", out, re.M).group(1))

    n = int(re.search(r"parameters: ([\d,]+)", out).group(1).replace(",", ""))
    xl = "xl" in name
    # GPT-2's shapes with the vocabulary padded to 50,304 and no biases (the configs' bias=False)
    L, d = (48, 1600) if xl else (12, 768)
    assert n == 50304 * d + 1024 * d + L * (12 * d * d + 2 * d) + d  # embeddings, blocks, ln_f
    fpt = float(re.search(r"FLOPs per token \(training, 6N \+ attention\): ([\d.e+]+)", out).group(1))
    assert fpt == pytest.approx(6 * (n - 1024 * d) + 12 * L * d * 1024, rel=1e-3)
    assert f"tokens per iteration: {524288 if xl else 491520:,}" in out
    assert f"activation {name.split('_')[-1]}" in out
    gib = 2**30
    assert figure("weights fp32") == pytest.approx(4 * n / gib, abs=0.006)
    assert figure("gradients fp32") == pytest.approx(4 * n / gib, abs=0.006)
    assert figure("AdamW moments") == pytest.approx(8 * n / gib, abs=0.006)
    assert figure("low-precision weights") == pytest.approx(2 * n / gib, abs=0.006)  # autocast's bf16 copies
    parts = 16 * n / gib + 2 * n / gib + figure("activations") + figure("loss")
    assert figure("total") == pytest.approx(parts, abs=0.02)
    assert ("fits a 80 GiB GPU" in out) == (figure("total") <= 0.9 * 80)
    # the time, from the FLOPs at the assumed MFU on 8 H100s (989 TFLOP/s each), labelled an estimate
    seconds = fpt * (524288 if xl else 491520) / (0.395 * 989e12 * 8)
    line = re.search(r"^time, estimated \(not measured\): ([\d.]+) s per iteration on 8 x H100 \(989 TFLOP/s bf16 "
                     r"each\) at an assumed 39.5% MFU, the one MFU measured here \(GPT-2 124M on one H200\); "
                     r"([\d,]+) iterations: ([\d.]+) (h|min|days)$", out, re.M)
    assert line and line[1] == f"{seconds:.3g}"
    iters = int(line[2].replace(",", ""))
    unit, printed = {"min": (60, 0.05), "h": (3600, 0.05), "days": (86400, 0.05)}[line[4]]
    assert float(line[3]) == pytest.approx(seconds * iters / unit, abs=printed + 1e-3)
