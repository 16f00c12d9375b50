"""What every verdict rests on, checked directly on the code paths train.py runs:

- for a given seed, every ungated activation starts from identical weights;
- every run sees the same training batches whatever its activation, and every run is scored on the
  same held-out batches whatever its seed (while different seeds do train on different batches);
- the learning rate of every iteration follows the schedule (linear warmup, cosine decay, floor),
  and gradients are clipped to grad_clip;
- best.pt holds the weights of the best evaluation, not the latest;
- a run's score covers every validation token exactly once, for its final and its best model.
"""

import json
import math
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import needs_fused_loss, read_metrics, run, tiny

from configurator import configure
from model import ACTIVATIONS
from training import checkpoint, loop, settings
from training.batches import Batches
from training.devices import autocast, resolve_device

UNGATED = [name for name, a in ACTIVATIONS.items() if not a.gated]
SINGLE = SimpleNamespace(ddp=False, rank=0, world_size=1, master=True)


CPU = SimpleNamespace(name="cpu", type="cpu", dtype="float32")


def config(dataset, tmp_path, **overrides):
    cfg = SimpleNamespace(**configure(settings.DEFAULTS, tiny(tmp_path, dataset, **overrides)))
    settings.validate(cfg)
    assert resolve_device(cfg) == CPU
    return cfg


def build(cfg):
    run = loop.build(cfg, CPU)
    return run.model, run.optimizer, run.scaler, Batches(cfg.dataset, cfg.batch_size, cfg.block_size, "cpu",
                                                                 run.model.config.vocab_size)


def step(model, optimizer, scaler, batches, cfg):
    return loop.Step(model, optimizer, scaler, batches, cfg, SINGLE, autocast(CPU))


class Recorder(torch.nn.Module):
    """Wraps a model and keeps every (x, y) it is called with."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, x, y):
        self.seen.append((x.clone(), y.clone()))
        return self.model(x, y)


def test_every_ungated_activation_starts_from_the_same_weights(char_dataset, tmp_path):
    states = {a: build(config(char_dataset, tmp_path, activation=a, seed=5))[0].state_dict() for a in UNGATED}
    reference = states["gelu"]
    for activation, state in states.items():
        assert state.keys() == reference.keys()
        for key in reference:
            assert torch.equal(state[key], reference[key]), (activation, key)
    other_seed = build(config(char_dataset, tmp_path, activation="gelu", seed=6))[0].state_dict()
    assert not torch.equal(other_seed["transformer.h.0.mlp.c_fc.weight"], reference["transformer.h.0.mlp.c_fc.weight"])


def trained_on(dataset, tmp_path, iterations, **overrides):
    """The (x, y) batches train.py's Step feeds the model at each of the given iterations."""
    cfg = config(dataset, tmp_path, gradient_accumulation_steps=3, **overrides)
    model, optimizer, scaler, batches = build(cfg)
    recorder = Recorder(model)
    for it in iterations:
        step(recorder, optimizer, scaler, batches, cfg)(it, loop.get_lr(it, cfg))
        optimizer.zero_grad(set_to_none=True)
    return recorder.seen


def same(a, b):
    return len(a) == len(b) and all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))


def test_every_activation_trains_on_the_same_batches(char_dataset, tmp_path):
    seen = {a: trained_on(char_dataset, tmp_path, [0, 7], activation=a, seed=3) for a in ("gelu", "relu", "swiglu")}
    assert len(seen["gelu"]) == 6  # 3 micro-batches at each of 2 iterations
    assert same(seen["relu"], seen["gelu"]) and same(seen["swiglu"], seen["gelu"])
    other_seed = trained_on(char_dataset, tmp_path, [0, 7], activation="gelu", seed=4)
    assert not same(other_seed, seen["gelu"])  # the seed does choose the training batches


def evaluated_on(dataset, tmp_path, **overrides):
    cfg = config(dataset, tmp_path, **overrides)
    model, _, _, batches = build(cfg)
    recorder = Recorder(model)
    losses = loop.evaluate(recorder, batches, cfg.eval_iters, autocast(CPU))
    return recorder.seen, losses


def test_every_run_is_scored_on_the_same_held_out_batches(char_dataset, tmp_path):
    seen = {(a, s): evaluated_on(char_dataset, tmp_path, activation=a, seed=s)[0]
            for a, s in (("gelu", 1), ("gelu", 2), ("none", 9))}
    reference = seen["gelu", 1]
    assert len(reference) == 2 * 2  # eval_iters batches of train, then of val
    assert same(seen["gelu", 2], reference) and same(seen["none", 9], reference)
    train_part, val_part = reference[:2], reference[2:]
    assert not same(train_part, val_part)


def test_evaluation_keeps_no_autograd_graph(char_dataset, tmp_path):
    """Evaluation runs without autograd (under torch.no_grad): its losses hold no graph, which at
    eval_iters=200 would keep every batch's activations alive at once."""
    cfg = config(char_dataset, tmp_path)
    model, _, _, batches = build(cfg)
    modes = []

    class Watch(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x, y):
            modes.append(torch.is_grad_enabled())
            return self.model(x, y)

    loop.evaluate(Watch(), batches, cfg.eval_iters, autocast(CPU))
    loop.whole_split_loss(Watch(), batches, "val", autocast(CPU))
    assert modes and not any(modes)


def test_evaluation_survives_outputs_overwritten_by_the_next_call(char_dataset, tmp_path):
    """Under CUDA graphs each replay writes its output into the same memory as the last one's; the
    evaluation must have read each batch's loss before the next call (here a stand-in model that
    returns one shared tensor, overwritten on every call)."""
    cfg = config(char_dataset, tmp_path)
    model, _, _, batches = build(cfg)
    shared, honest = torch.zeros(()), []

    class Replayed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x, y):
            logits, loss = self.model(x, y)
            honest.append(loss.item())
            shared.copy_(loss)
            return logits, shared

    losses = loop.evaluate(Replayed(), batches, cfg.eval_iters, autocast(CPU))
    per_split = len(honest) // 2
    assert losses["val"] == pytest.approx(sum(honest[per_split:]) / per_split, rel=1e-6)
    assert losses["train"] == pytest.approx(sum(honest[:per_split]) / per_split, rel=1e-6)


def scheduled_lr(it, lr, warmup, decay, floor):
    """nanoGPT's schedule, written out: linear warmup over `warmup` iterations, cosine from lr to
    floor until `decay`, then floor."""
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it > decay:
        return floor
    return floor + (lr - floor) * (1 + math.cos(math.pi * (it - warmup) / (decay - warmup))) / 2


def test_learning_rate_of_every_iteration_follows_the_schedule(char_dataset, tmp_path):
    lr, warmup, decay, floor = 3e-3, 5, 20, 3e-4
    cfg = config(char_dataset, tmp_path, learning_rate=lr, warmup_iters=warmup, lr_decay_iters=decay, min_lr=floor)
    model, optimizer, scaler, batches = build(cfg)
    for it in range(25):
        step(model, optimizer, scaler, batches, cfg)(it, loop.get_lr(it, cfg))
        applied = [group["lr"] for group in optimizer.param_groups]
        assert applied == [pytest.approx(scheduled_lr(it, lr, warmup, decay, floor), rel=1e-12)] * 2, it
    # and the rate the run records is the one it applied
    r = run("train.py", *tiny(tmp_path / "run", char_dataset, max_iters=25, learning_rate=lr, warmup_iters=warmup,
                              lr_decay_iters=decay, min_lr=floor))
    assert r.returncode == 0, r.stderr
    logged = [(m["iter"], m["lr"]) for m in read_metrics(tmp_path / "run") if "loss" in m]
    assert [it for it, _ in logged] == list(range(25))
    for it, value in logged:
        assert value == pytest.approx(scheduled_lr(it, lr, warmup, decay, floor), rel=1e-12), it
    assert cfg.decay_lr and config(char_dataset, tmp_path, decay_lr=False).decay_lr is False
    cfg = config(char_dataset, tmp_path, decay_lr=False, learning_rate=lr)
    assert {loop.get_lr(it, cfg) for it in (0, 5, 29)} == {lr}


@pytest.mark.parametrize("clip", [0.01, 0.0])
def test_gradients_are_clipped_to_grad_clip(clip, char_dataset, tmp_path):
    cfg = config(char_dataset, tmp_path, grad_clip=clip)
    model, optimizer, scaler, batches = build(cfg)
    seen = []  # the gradients' norm as the update receives them, after clipping
    optimizer.register_step_pre_hook(lambda *_: seen.append(torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(p.grad) for p in model.parameters()]))))
    _, norm, _ = step(model, optimizer, scaler, batches, cfg)(0, loop.get_lr(0, cfg))
    after = seen[0]
    assert norm > 0.1  # the norm before clipping, as train_step returns it
    if clip:
        assert after.item() == pytest.approx(clip, rel=1e-4)
    else:  # 0 disables clipping
        assert after.item() == pytest.approx(norm.item(), rel=1e-5)


def test_best_pt_holds_the_weights_of_the_best_evaluation(char_dataset, tmp_path):
    """A constant, too-high learning rate makes the val loss go down and then up, so the best
    evaluation is not the last. A run stopped at the best evaluation's iteration has the weights
    best.pt must hold: the first iterations of a run do not depend on where it stops."""
    flags = dict(learning_rate=0.05, decay_lr=False, warmup_iters=0, max_iters=40, eval_interval=4)
    r = run("train.py", *tiny(tmp_path / "full", char_dataset, **flags))
    assert r.returncode == 0, r.stderr
    evals = [m for m in read_metrics(tmp_path / "full") if "val_loss" in m]
    best = min(evals, key=lambda m: m["val_loss"])
    assert 0 < best["iter"] < 40, "the val loss should turn up before the end"
    r = run("train.py", *tiny(tmp_path / "short", char_dataset, **{**flags, "max_iters": best["iter"]}))
    assert r.returncode == 0, r.stderr
    saved = checkpoint.load(str(tmp_path / "full" / "best.pt"))
    expected = checkpoint.load(str(tmp_path / "short" / "ckpt.pt"))
    assert saved["iter_num"] == best["iter"]
    for key, tensor in expected["model"].items():
        assert torch.equal(saved["model"][key], tensor), key
    latest = checkpoint.load(str(tmp_path / "full" / "ckpt.pt"))
    assert latest["iter_num"] == 40
    assert not torch.equal(latest["model"]["lm_head.weight"], saved["model"]["lm_head.weight"])
    # the summary scores both models on the whole validation split: best.pt's and the final one's
    summary = json.loads((tmp_path / "full" / "summary.json").read_text())
    val = np.fromfile(os.path.join(char_dataset, "val.bin"), dtype=np.uint16).astype(np.int64)
    assert summary["full_val_tokens"] == len(val) - 1
    assert summary["best_full_val_loss"] == pytest.approx(whole_split_by_hand(saved, val), abs=1e-5)
    assert summary["final_full_val_loss"] == pytest.approx(whole_split_by_hand(latest, val), abs=1e-5)
    assert summary["best_full_val_loss"] != summary["final_full_val_loss"]  # two models, two scores


@torch.no_grad()
def whole_split_by_hand(state, tokens):
    """Mean loss over tokens[1:], each predicted once: windows of block_size from 0, every
    block_size tokens, and one ending at the last token; a target already scored is not scored
    again."""
    model = checkpoint.build_model(state).eval()
    T, n = model.config.block_size, len(tokens) - 1
    loss = {}
    for start in [*range(0, n - T + 1, T), n - T]:
        x, y = (torch.from_numpy(tokens[start + k:start + k + T])[None] for k in (0, 1))
        ce = F.cross_entropy(model(x, y)[0][0], y[0], reduction="none")
        for j in range(T):
            loss.setdefault(start + 1 + j, ce[j].item())
    assert sorted(loss) == list(range(1, n + 1))
    return sum(loss.values()) / n


@pytest.mark.parametrize("tokens, batch_size, block_size", [(1000, 4, 32), (1025, 4, 32), (33, 3, 32),
                                                             (97, 2, 8), (100, 5, 9), (64 * 12 + 1, 12, 64)])
def test_the_whole_split_has_every_token_once(tokens, batch_size, block_size, tmp_path):
    """Batches.whole: every token after the first a target exactly once, in batches of one shape,
    each target the token that follows its input."""
    for split in ("train", "val"):
        np.arange(tokens, dtype=np.uint16).tofile(tmp_path / f"{split}.bin")
    batches = Batches(str(tmp_path), batch_size, block_size, "cpu", 65536)
    targets, counted = [], 0
    for x, y, n in batches.whole("val"):
        assert x.shape == y.shape == (batch_size, block_size)
        kept = y != -1
        assert torch.equal(y[kept], (x + 1)[kept])  # token i is followed by token i + 1
        targets += y[kept].tolist()
        counted += n
        assert n == kept.sum().item()
    assert sorted(targets) == list(range(1, tokens)) and counted == tokens - 1


@needs_fused_loss
def test_the_fused_loss_trains_as_the_plain_one(char_dataset, tmp_path):
    """fused_loss='torch' (torch's chunked linear_cross_entropy) logs the plain run's losses to float32
    rounding."""
    for name, fused in (("plain", "off"), ("fused", "torch")):
        r = run("train.py", *tiny(tmp_path / name, char_dataset, max_iters=12, eval_interval=6, fused_loss=fused))
        assert r.returncode == 0, r.stderr
    plain, fused = (read_metrics(tmp_path / name) for name in ("plain", "fused"))
    for a, b in zip(plain, fused):
        key = "val_loss" if "val_loss" in a else "loss"
        assert b[key] == pytest.approx(a[key], rel=1e-5), (a["iter"], key)


def test_the_fused_loss_falls_back_where_torch_lacks_it(char_dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.delattr(torch.nn.functional, "linear_cross_entropy", raising=False)
    model = loop.build(config(char_dataset, tmp_path, fused_loss="torch"), CPU).model
    assert model.fused_loss is None
    assert "computing the loss from the logits" in capsys.readouterr().out


@pytest.mark.parametrize("setting, device, installed, chosen, said", [
    ("auto", "cuda", True, "liger", False),  # a GPU with liger-kernel: Liger's, unasked
    ("auto", "cuda", False, None, False),  # without it: the plain loss, silently
    ("auto", "cpu", True, None, False),  # Liger's kernels are CUDA's alone
    ("liger", "cpu", True, None, True),  # asked for where it cannot run: the plain loss, saying why
    ("liger", "cuda", False, None, True),
    ("liger", "cuda", True, "liger", False),
    ("torch", "cpu", True, "torch", False),
    ("off", "cuda", True, None, False),
])
def test_the_fused_loss_is_chosen_by_device_and_installed_kernels(monkeypatch, setting, device, installed, chosen,
                                                                  said):
    import importlib.util

    real = importlib.util.find_spec
    found = object() if installed else None

    def find_spec(name, *args):
        return found if name == "liger_kernel" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    told = []
    assert loop.fused_loss_kernel(setting, device, say=told.append) == chosen
    assert bool(told) == said


def test_dropout_masks_do_not_depend_on_the_activation(char_dataset, tmp_path):
    """At dropout > 0 every activation trains under the same masks: the activation draws no random
    numbers, so the masks of a step (read off each dropout's output) are the same for all."""
    masks = {}
    for activation in ("gelu", "relu", "swiglu", "none"):
        cfg = config(char_dataset, tmp_path, activation=activation, dropout=0.2)
        model, optimizer, scaler, batches = build(cfg)
        seen = masks[activation] = []
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.register_forward_hook(lambda mod, args, out, seen=seen: seen.append((out == 0) & (args[0] != 0)))
        step(model, optimizer, scaler, batches, cfg)(3, loop.get_lr(3, cfg))
    assert masks["gelu"] and all(mask.any() for mask in masks["gelu"])
    for activation in ("relu", "swiglu", "none"):
        assert len(masks[activation]) == len(masks["gelu"]), activation
        assert all(torch.equal(a, b) for a, b in zip(masks[activation], masks["gelu"])), activation


def test_the_collapse_check_compares_the_folded_model_with_the_unfolded_one(monkeypatch):
    """analysis.json's 'none' collapse check must measure the folded model against the unfolded one:
    with the folding broken on purpose, the difference it reports is large, not 0."""
    import model as model_module
    from training import analysis

    torch.manual_seed(0)
    gpt = model_module.GPT(model_module.GPTConfig(block_size=16, vocab_size=50, n_layer=2, n_head=2, n_embd=24,
                                                  activation="none")).eval()
    batch = (torch.randint(0, 50, (2, 16)), torch.randint(0, 50, (2, 16)))
    with torch.no_grad():
        assert analysis.collapse(gpt, batch)["diff"] < 1e-5  # the folding is exact
        real = model_module.MLP.folded

        def doubled(mlp):
            folded = real(mlp)
            folded.weight.mul_(2)
            return folded

        monkeypatch.setattr(model_module.MLP, "folded", doubled)
        assert analysis.collapse(gpt, batch)["diff"] > 1e-3


def test_hidden_unit_statistics_match_values_worked_out_by_hand():
    """analysis.json's unit statistics on two one-feature MLPs (relu, then none) with hand-set weights:
    pre-activations w·x + b for unit weights (1, -1, 0, 2) and biases (0, 0, -1, -3), on a batch of
    tokens x = 1, -2, 0.5 and then one of x = 3. Units 0 and 1 fire on some tokens only, unit 3 on the
    second batch only, unit 2 never: one unit in four is dead in both layers."""
    import model as model_module
    from training import analysis

    mlps = []
    for activation in ("relu", "none"):
        mlp = model_module.MLP(model_module.GPTConfig(n_embd=1, n_head=1, activation=activation))
        with torch.no_grad():
            mlp.c_fc.weight.copy_(torch.tensor([[1.0], [-1.0], [0.0], [2.0]]))
            mlp.c_fc.bias.copy_(torch.tensor([0.0, 0.0, -1.0, -3.0]))
        mlps.append(mlp)

    class Stand(torch.nn.Module):  # each MLP sees the batch's tokens as its input
        def __init__(self):
            super().__init__()
            self.transformer = SimpleNamespace(h=[SimpleNamespace(mlp=m) for m in mlps])

        def forward(self, x, y):
            return [m(x) for m in mlps]

    batches = [(torch.tensor([[[1.0], [-2.0], [0.5]]]), None), (torch.tensor([[[3.0]]]), None)]
    with torch.no_grad():
        got = analysis.hidden_units(Stand(), batches)
    # relu outputs: unit 0: 1, 0, 0.5 | 3; unit 1: 0, 2, 0 | 0; unit 2: 0, 0, 0 | 0; unit 3: 0, 0, 0 | 3
    relu = dict(dead=0.25, mean=9.5 / 16, zeros=11 / 16, abs=9.5 / 16)
    # none: unit 0: 1, -2, 0.5 | 3; unit 1: -1, 2, -0.5 | -3; unit 2: -1, -1, -1 | -1; unit 3: -1, -7, -2 | 3
    none = dict(dead=0.25, mean=-11 / 16, zeros=0.0, abs=30 / 16)
    assert got["layers"] == [pytest.approx(relu), pytest.approx(none)]
    assert got["mean"] == pytest.approx({k: (relu[k] + none[k]) / 2 for k in relu})


def test_a_skipped_update_leaves_weights_moments_and_step_count_as_they_were(char_dataset, tmp_path):
    """nonfinite='skip', finite weights, one poisoned batch whose gradient alone is infinite: the
    weights, AdamW's moments and its step counts are exactly as before that iteration, and training
    goes on with finite losses."""
    cfg = config(char_dataset, tmp_path, nonfinite="skip")
    model, optimizer, scaler, batches = build(cfg)

    class Poisoned(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model, self.poison = model, False

        def forward(self, x, y):
            logits, loss = self.model(x, y)
            return logits, loss * float("inf") if self.poison else loss

    poisoned = Poisoned()
    run_step = step(poisoned, optimizer, scaler, batches, cfg)
    for it in range(3):
        assert run_step(it, loop.get_lr(it, cfg))[2].item() == 0.0
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    state = {id(p): {k: v.clone() for k, v in s.items()} for p, s in optimizer.state.items()}
    assert state and all(s["step"].item() == 3 for s in state.values())
    poisoned.poison = True
    loss, norm, skipped = run_step(3, loop.get_lr(3, cfg))
    assert skipped.item() == 1.0 and not torch.isfinite(norm)
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    for p, s in optimizer.state.items():
        assert all(torch.equal(v, state[id(p)][k]) for k, v in s.items())
    poisoned.poison = False
    for it in range(4, 7):
        loss, norm, skipped = run_step(it, loop.get_lr(it, cfg))
        assert torch.isfinite(loss) and torch.isfinite(norm) and skipped.item() == 0.0
    assert all(s["step"].item() == 6 for s in optimizer.state.values())


def test_clipping_under_a_loss_scaler_clips_the_unscaled_gradients(char_dataset, tmp_path):
    """float16 training scales the loss (GradScaler); clipping must see the gradients unscaled. With
    the scaler on (a power-of-two scale, float32 compute: scaling and unscaling are exact), the norm
    a step returns, which train.py logs, and the weights after it equal a float32 step clipped at
    grad_clip, and the clipping is active."""
    cfg = config(char_dataset, tmp_path, grad_clip=0.05)
    plain_model, plain_opt, plain_scaler, batches = build(cfg)
    model, optimizer, _, _ = build(cfg)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12, enabled=True)
    for it in range(3):
        _, want, _ = step(plain_model, plain_opt, plain_scaler, batches, cfg)(it, loop.get_lr(it, cfg))
        _, got, skipped = step(model, optimizer, scaler, batches, cfg)(it, loop.get_lr(it, cfg))
        assert want > cfg.grad_clip and skipped.item() == 0.0
        assert got.item() == pytest.approx(want.item(), rel=1e-6)
        for (name, a), b in zip(plain_model.state_dict().items(), model.state_dict().values()):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7, msg=f"{name} after iteration {it}")
