"""bench.py: each mode runs on a tiny model and prints figures that agree with each other; the step
it times compiles in the mode train.py would (CUDA graphs included), and its nanoGPT-style step
uses the AdamW nanoGPT does on CUDA (fused) and elsewhere."""

import json
import re

import pytest
from conftest import run, tiny

from model import ACTIVATIONS, GPT, GPTConfig

QUICK = dict(iters=3, repeats=2, warmup=1)


def bench(tmp_path, dataset, **flags):
    result = run("bench.py", *tiny(tmp_path, dataset, **{**QUICK, **flags}), timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_train_mode_prints_time_throughput_and_mfu(char_dataset, tmp_path):
    out = bench(tmp_path, char_dataset, reference=True)
    tokens_per_iter = 4 * 32 * 2  # batch_size x block_size x gradient_accumulation_steps of tiny()
    assert f"tokens per iteration: {tokens_per_iter}" in out
    assert re.search(r"FLOPs per token: [\d.e+]+", out)
    assert re.search(r"measured peak: [\d,.]+ GFLOP/s \(float32 matmul \d+x\d+", out)
    for name in ("ours", "nanoGPT-style"):
        m = re.search(rf"{name}: ([\d.]+) ms \(min [\d.]+, max [\d.]+\) per iteration, ([\d,]+) tokens/s, "
                      r"MFU [\d.]+% of measured peak", out)
        assert m, out
        ms, tokens_per_s = float(m[1]), float(m[2].replace(",", ""))
        assert abs(tokens_per_s - tokens_per_iter / (ms / 1000)) <= 0.01 * tokens_per_s + 1
    assert re.search(r"speedup over the nanoGPT-style step: [\d.]+x", out)
    # 3 products (forward, input and weight gradients) per linear layer: 4 per block and lm_head
    m = re.search(r"matmul floor: ([\d.]+) ms per iteration, the step's (\d+) matrix products alone", out)
    assert m and int(m[2]) == 3 * (4 * 2 + 1) * 2, out
    ours = float(re.search(r"ours: ([\d.]+) ms", out)[1])
    assert float(m[1]) < ours  # a step does these products and more
    assert re.search(r"most possible with these matmuls: [\d.]+x", out)


def test_sample_mode_cache_gives_identical_tokens(char_dataset, tmp_path):
    # 40 new tokens after a prompt of 4 overflow block_size 32, so the cached path rebuilds its cache
    out = bench(tmp_path, char_dataset, mode="sample", prompt_len=4, new_tokens=40)
    rates = {name: float(re.search(rf"^{name}: ([\d,.]+) tokens/s", out, re.M)[1].replace(",", ""))
             for name in ("KV cache", "no cache", "nanoGPT generate")}
    m = re.search(r"cache speedup: ([\d.]+)x over no cache, ([\d.]+)x over nanoGPT's generate", out)
    assert float(m[1]) == pytest.approx(rates["KV cache"] / rates["no cache"], abs=0.006)
    assert float(m[2]) == pytest.approx(rates["KV cache"] / rates["nanoGPT generate"], abs=0.006)
    assert "identical tokens with and without the cache: yes" in out


def test_activations_mode_lists_every_registry_entry(char_dataset, tmp_path):
    out = bench(tmp_path, char_dataset, mode="activations", iters=1, repeats=1, warmup=0)
    rows = {line.split()[0]: line for line in out.splitlines() if line.split() and line.split()[0] in ACTIVATIONS}
    assert list(rows) == list(ACTIVATIONS)
    vocab = json.loads((char_dataset / "meta.json").read_text(encoding="utf-8"))["vocab_size"]
    row = re.compile(r"^(\w+)\s+(yes|no)\s+([\d,]+)\s+([\d.]+) ms .*\s([\d.]+)x$")
    medians = {name: float(row.match(line)[4]) for name, line in rows.items()}
    for name, line in rows.items():
        m = row.match(line)
        gated = ACTIVATIONS[name].gated
        model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=32, vocab_size=vocab, bias=False,
                              activation=name))
        assert m[2] == ("yes" if gated else "no") and int(m[3].replace(",", "")) == model.get_num_params()
        assert float(m[5]) == pytest.approx(medians[name] / medians["gelu"], abs=0.006)
    assert re.search(r"MLP alone, forward\+backward on 4x32x32: .* ratio [\d.]+", out)


def test_profile_mode_names_the_step_operators(char_dataset, tmp_path):
    out = bench(tmp_path, char_dataset, mode="profile")
    assert "profile: totals over 3 iterations, by CPU time of their own" in out
    mm = re.search(r"^\s*aten::mm\s+[\d.]+%.*\s(\d+)\s*$", out, re.M)
    assert mm and int(mm[1]) == 3 * 3 * (4 * 2 + 1) * 2, out  # the step's matrix products, as in train mode


def test_user_errors_are_one_line(char_dataset, tmp_path):
    modes = "train, levers, sample, activations, profile, graphs"
    for flag, message in (("--mode=fast", f"error: mode='fast' is not valid; choose one of {modes}"),
                          ("--iters=0", "error: iters=0 must be a positive integer")):
        result = run("bench.py", *tiny(tmp_path, char_dataset), flag)
        assert result.returncode == 1 and result.stderr.strip() == message


def test_the_timed_step_compiles_in_the_runs_mode(monkeypatch):
    """bench.py and train.py compile through one function, in the mode asked for: the 'CUDA graphs'
    speed row must time compile_mode='reduce-overhead', not the default mode."""
    from types import SimpleNamespace

    import torch

    from training import loop

    modes = []
    monkeypatch.setattr(torch, "compile", lambda model, mode="default", **kw: modes.append(mode) or model)
    for mode in ("default", "reduce-overhead", "max-autotune"):
        loop.compiled(torch.nn.Linear(2, 2), SimpleNamespace(fsdp=False, compile_mode=mode), True)
    assert modes == ["default", "reduce-overhead", "max-autotune"]


def test_the_nanogpt_style_step_uses_nanogpts_adamw(monkeypatch):
    from types import SimpleNamespace

    import torch

    import bench

    made = []
    monkeypatch.setattr(torch.optim, "AdamW", lambda groups, **kw: made.append(kw))
    cfg = SimpleNamespace(weight_decay=0.1, learning_rate=1e-3, beta1=0.9, beta2=0.95)
    for device_type in ("cuda", "cpu", "mps"):
        bench.nanogpt_optimizer(torch.nn.Linear(2, 2), cfg, device_type)
    assert made[0] == dict(lr=1e-3, betas=(0.9, 0.95), fused=True)
    assert made[1] == made[2] == dict(lr=1e-3, betas=(0.9, 0.95), foreach=False)


def test_mfu_divides_by_every_devices_peak():
    """MFU over N GPUs is the FLOP/s of all of them against N peaks, not one."""
    model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=64))
    one = model.estimate_mfu(10_000, 1e12)
    assert model.estimate_mfu(10_000, 1e12, 8) == pytest.approx(one / 8)
    assert one == pytest.approx(model.flops_per_token() * 10_000 / 1e12)
