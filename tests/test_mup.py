"""µP (mup_base_width): the coordinate check for every activation of the registry (flat across
widths under µP, growing without it), and a µP run through the code paths a run takes: exact
resume, FSDP over torchrun, the KV cache, the dry run's rate and its origin, and a resume that
changes the parametrization refused. (Its init, rates and multipliers: test_model.py; the export
to transformers: test_hf.py.)"""

from types import SimpleNamespace

import pytest
import torch
from conftest import read_metrics, run, tiny

import coord_check
import settings
from configurator import configure
from model import ACTIVATIONS, GPT, GPTConfig

MUP = dict(n_embd=32, n_head=2, mup_base_width=16)


def losses(folder):
    return [(m["iter"], k, m[k]) for m in read_metrics(folder) for k in ("loss", "val_loss") if k in m]


def test_coordinates_stay_flat_under_mup_and_grow_without(char_dataset, tmp_path):
    """Widths 64 to 256, five steps: under µP every kind of output of every activation keeps its size
    within 1.5x from the narrowest to the widest; without µP some kind grows more than that."""
    cfg = SimpleNamespace(**configure(coord_check.DEFAULTS, [f"--dataset={str(char_dataset)!r}",
                                                             "--widths=[64, 128, 256]", "--threads=1"]))
    coord_check.validate(cfg)
    results = coord_check.run(cfg)
    for activation in ACTIVATIONS:
        mup, standard = (results[p][activation] for p in coord_check.PARAMETRIZATIONS)
        for kind in coord_check.KINDS:
            flat = coord_check.spread([mup[w][kind][-1] for w in cfg.widths])
            assert flat < 1.5, (activation, kind, flat)
        grown = max(coord_check.spread([standard[w][kind][-1] for w in cfg.widths]) for kind in coord_check.KINDS)
        assert grown > 1.5, (activation, grown)


def test_a_mup_run_resumes_exactly(char_dataset, tmp_path):
    flags = dict(MUP, max_iters=12, lr_decay_iters=12, eval_interval=3, dropout=0.1)
    assert run("train.py", *tiny(tmp_path / "full", char_dataset, **flags)).returncode == 0
    assert run("train.py", *tiny(tmp_path / "part", char_dataset, **{**flags, "max_iters": 6})).returncode == 0
    r = run("train.py", *tiny(tmp_path / "part", char_dataset, **flags, init_from="resume"))
    assert r.returncode == 0, r.stderr
    assert losses(tmp_path / "part") == losses(tmp_path / "full")


def test_a_mup_run_under_fsdp_computes_what_one_process_does(char_dataset, tmp_path):
    flags = dict(MUP, max_iters=8, lr_decay_iters=8, eval_interval=4, gradient_accumulation_steps=4)
    assert run("train.py", *tiny(tmp_path / "one", char_dataset, **flags)).returncode == 0
    r = run("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py",
            *tiny(tmp_path / "fsdp", char_dataset, **flags, fsdp=True))
    assert r.returncode == 0, r.stderr
    for (i, k, a), (j, m, b) in zip(losses(tmp_path / "fsdp"), losses(tmp_path / "one"), strict=True):
        assert (i, k) == (j, m) and a == pytest.approx(b, rel=1e-5), (i, k)


def test_a_mup_model_samples_the_same_with_and_without_the_cache():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=50, n_layer=2, n_head=2, n_embd=32, mup_base_width=8)).eval()
    idx = torch.randint(0, 50, (2, 5))
    outputs = []
    for use_cache in (True, False):
        torch.manual_seed(1)
        outputs.append(model.generate(idx, 30, top_k=10, use_cache=use_cache))
    assert torch.equal(*outputs)


@pytest.mark.parametrize("config", ["gpt2_124m_gelu_mup", "gpt2_xl_relu_mup"])
def test_the_dry_run_says_the_rate_and_where_it_comes_from(config):
    cfg = SimpleNamespace(**configure(settings.DEFAULTS, [f"config/{config}.py"]))
    r = run("train.py", f"config/{config}.py", "--dry_run=True")
    assert r.returncode == 0, r.stderr
    m = cfg.n_embd / cfg.mup_base_width
    line = next(line for line in r.stdout.splitlines() if line.startswith("learning rate:"))
    assert line == (f"learning rate: peak {cfg.learning_rate:g}, µP on base width {cfg.mup_base_width}: the hidden "
                    f"matrices at {cfg.learning_rate / m:.3g} (x{1 / m:.3g} at width {cfg.n_embd}); from: "
                    f"{cfg.learning_rate_from}")
    assert "transferred" in cfg.learning_rate_from and "not tuned" in cfg.learning_rate_from


def test_a_resume_that_changes_the_parametrization_is_refused(char_dataset, tmp_path):
    assert run("train.py", *tiny(tmp_path, char_dataset, max_iters=2)).returncode == 0
    r = run("train.py", *tiny(tmp_path, char_dataset, max_iters=4, init_from="resume", mup_base_width=16))
    assert r.returncode == 1
    assert "was trained with mup_base_width=0 but this run asks for mup_base_width=16" in r.stderr
