"""µP (mup_base_width): the coordinate check for every activation of the registry (flat across
widths under µP, growing without it), and a µP run through the code paths a run takes: exact
resume, FSDP over torchrun, the KV cache, the dry run's rate and its origin, and a resume that
changes the parametrization refused. (Its init, rates and multipliers: test_model.py; the export
to transformers: test_hf.py.)"""

import math
from types import SimpleNamespace

import pytest
import torch
from conftest import read_metrics, run, tiny

from configurator import configure
from model import ACTIVATIONS, GPT, GPTConfig
from tools import coord_check
from training import settings

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
    assert (cfg.mup_base_width, cfg.mup_base_head_dim) == (256, 64) and cfg.n_embd // cfg.n_head == 64


def test_a_resume_that_changes_the_parametrization_is_refused(char_dataset, tmp_path):
    assert run("train.py", *tiny(tmp_path, char_dataset, max_iters=2)).returncode == 0
    r = run("train.py", *tiny(tmp_path, char_dataset, max_iters=4, init_from="resume", mup_base_width=16))
    assert r.returncode == 1
    assert "was trained with mup_base_width=0 but this run asks for mup_base_width=16" in r.stderr


def train_in_process(config, steps=50, lr=3e-3, weight_decay=0.1):
    """(the loss of every step, the final state dict) of `steps` AdamW steps from seed 0 on fixed
    random batches, each group at the rate the training step gives it."""
    torch.manual_seed(0)
    model = GPT(config)
    optimizer = model.configure_optimizers(weight_decay, lr, (0.9, 0.95))
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    batches = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(steps):
        x = torch.randint(0, config.vocab_size, (4, config.block_size), generator=batches)
        _, loss = model(x, torch.roll(x, -1, 1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses, model.state_dict()


@pytest.mark.parametrize("width, heads", [(16, 1), (64, 2)])
def test_mup_at_its_base_width_is_the_standard_model(width, heads):
    """At m = 1 every µP rule is the identity, attention's scale included (sqrt(d_base_head)/d_head
    is SDPA's 1/sqrt(d_head) there): the same losses at each of 50 steps and the same weights, bit
    for bit. (Scaling q.k by 1/d_head made them differ from the first step.)"""
    shape = dict(n_layer=2, n_head=heads, n_embd=width, block_size=32, vocab_size=65, dropout=0.0)
    standard = train_in_process(GPTConfig(**shape))
    mup = train_in_process(GPTConfig(**shape, mup_base_width=width))
    assert mup[0] == standard[0]
    assert all(torch.equal(mup[1][k], standard[1][k]) for k in standard[1])


def test_the_multipliers_and_rates_act_as_defined():
    """α_out and 1/m multiply the logits, α_in the embeddings, α_attn the attention scale
    sqrt(d_base_head)/d_head (here a base of 16 with 2 heads of 8, widened by the heads' size); the
    hidden matrices learn at η/m and decay at λ m; the rest as in the standard model."""
    shape = dict(n_layer=2, n_head=2, n_embd=64, block_size=16, vocab_size=50, dropout=0.0, mup_base_width=16,
                 mup_base_head_dim=8)
    idx = torch.randint(0, 50, (2, 16))
    models = {}
    for name, mults in (("plain", {}), ("out", dict(mup_output_mult=2.0)), ("in", dict(mup_input_mult=3.0)),
                        ("attn", dict(mup_attn_mult=0.5))):
        torch.manual_seed(0)
        models[name] = GPT(GPTConfig(**shape, **mults)).eval()
    with torch.no_grad():
        logits = {name: m(idx, torch.zeros_like(idx))[0] for name, m in models.items()}
        torch.testing.assert_close(logits["out"], 2 * logits["plain"], rtol=0, atol=0)  # powers of 2: exact
        plain = models["plain"]
        seen = []
        handle = models["in"].transformer.h[0].register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
        models["in"](idx)
        handle.remove()
        embedded = plain.transformer.wte(idx) + plain.transformer.wpe(torch.arange(16))
        torch.testing.assert_close(seen[0], 3.0 * embedded)
        # the logits of µP at width 64 on base 16 (m = 4): lm_head(ln_f(h)) / 4
        hidden = []
        handle = plain.transformer.ln_f.register_forward_hook(lambda mod, args, out: hidden.append(out))
        plain(idx, torch.zeros_like(idx))
        handle.remove()
        torch.testing.assert_close(logits["plain"], plain.lm_head(hidden[0]) / 4)
    d_head, d_base_head = 32, 8  # 64 / 2 heads; base 16 / 2 heads
    assert models["plain"].transformer.h[0].attn.scale == math.sqrt(d_base_head) / d_head
    assert models["attn"].transformer.h[0].attn.scale == 0.5 * math.sqrt(d_base_head) / d_head
    # the attention scale in use: an attention layer's output against its definition
    attn, x = models["attn"].transformer.h[0].attn, torch.randn(2, 16, 64)
    q, k, v = (t.view(2, 16, 2, 32).transpose(1, 2) for t in attn.c_attn(x).split(64, dim=2))
    weights = (q @ k.transpose(-2, -1) * attn.scale).masked_fill(torch.ones(16, 16).triu(1).bool(), float("-inf"))
    expected = attn.c_proj((weights.softmax(-1) @ v).transpose(1, 2).reshape(2, 16, 64))
    torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-6)
    groups = models["plain"].configure_optimizers(0.1, 1e-3, (0.9, 0.95)).param_groups
    hidden_group = next(g for g in groups if "lr_scale" in g)
    assert hidden_group["lr_scale"] == 1 / 4 and hidden_group["weight_decay"] == pytest.approx(0.4)
    blocks = {id(p) for p in models["plain"].transformer.h.parameters() if p.dim() >= 2}
    assert {id(p) for p in hidden_group["params"]} == blocks
    assert sorted(g["weight_decay"] for g in groups if "lr_scale" not in g) == [0.0, 0.1]


def test_a_resume_that_changes_a_multiplier_is_refused(char_dataset, tmp_path):
    flags = dict(MUP, max_iters=2, lr_decay_iters=2, eval_interval=2)
    assert run("train.py", *tiny(tmp_path, char_dataset, **flags)).returncode == 0
    r = run("train.py", *tiny(tmp_path, char_dataset, **{**flags, "max_iters": 4}, init_from="resume",
                              mup_output_mult=2.0))
    assert r.returncode == 1
    assert "was trained with mup_output_mult=1.0 but this run asks for mup_output_mult=2.0" in r.stderr


def test_an_older_mup_checkpoint_keeps_its_attention():
    """µP checkpoints written before the multipliers scaled q.k by 1/d_head: read now, α_attn =
    1/sqrt(d_base_head) gives that scale again; standard ones get the defaults."""
    from training import checkpoint

    old = checkpoint.with_mup_defaults(dict(n_embd=64, n_head=2, mup_base_width=16))
    assert GPTConfig(**old).attention_scale == pytest.approx(1 / 32)  # heads of 32
    assert checkpoint.with_mup_defaults(dict(n_embd=64, n_head=2)) == dict(
        n_embd=64, n_head=2, mup_base_width=0, mup_base_head_dim=0, mup_input_mult=1.0, mup_output_mult=1.0,
        mup_attn_mult=1.0)
