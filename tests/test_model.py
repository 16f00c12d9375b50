"""The model: every activation in the registry, the reference MLPs, the linear collapse of 'none',
parameter matching of gated MLPs, generation with and without the KV cache (the cache written in
place when compiled, positions kept on the device, the sampling distribution as defined), the fused
loss (also compiled in one graph), and µP (its init, rates and multipliers)."""

import copy
import math

import pytest
import torch
import torch.nn as nn
from conftest import needs_fused_loss

from model import ACTIVATIONS, GPT, MLP, GPTConfig, mlp_hidden

SMALL = dict(block_size=16, vocab_size=50, n_layer=2, n_head=2, n_embd=24, dropout=0.0)


def exact_gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def relu(x):
    return torch.where(x > 0, x, torch.zeros_like(x))


# Every registry entry, written out here independently of model.py: (elementwise function, gated).
# A gated MLP applies the function to the first half of c_fc's output and multiplies by the second.
FORMULAS = {
    "gelu": (exact_gelu, False),
    "gelu_tanh": (lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))), False),
    "relu": (relu, False),
    "relu2": (lambda x: relu(x) * relu(x), False),
    "silu": (lambda x: x / (1 + torch.exp(-x)), False),
    "none": (lambda x: x, False),
    "swiglu": (lambda x: x / (1 + torch.exp(-x)), True),
    "geglu": (exact_gelu, True),
    "reglu": (relu, True),
    "bilinear": (lambda x: x, True),
}


def test_the_formulas_cover_the_registry():
    assert list(FORMULAS) == list(ACTIVATIONS)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_each_activation_computes_its_formula(name):
    fn, gated = FORMULAS[name]
    torch.manual_seed(0)
    mlp = MLP(GPTConfig(**SMALL, activation=name)).double()
    for p in mlp.parameters():
        nn.init.normal_(p, std=0.5)  # inputs to the activation spread over [-4, 4], where the GELUs differ
    x = torch.randn(3, 5, 24, dtype=torch.float64)
    h = x @ mlp.c_fc.weight.T + mlp.c_fc.bias
    hidden = mlp.c_proj.in_features
    if gated:
        assert h.shape[-1] == 2 * hidden
        h = fn(h[..., :hidden]) * h[..., hidden:]
    else:
        assert h.shape[-1] == hidden
        h = fn(h)
    torch.testing.assert_close(mlp(x), h @ mlp.c_proj.weight.T + mlp.c_proj.bias, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@pytest.mark.parametrize("bias", [True, False])
def test_every_activation_trains(name, bias):
    """A few AdamW steps on one batch lower its loss, and every parameter gets a finite gradient."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SMALL, bias=bias, activation=name))
    optimizer = model.configure_optimizers(0.0, 1e-2, (0.9, 0.95))
    idx = torch.randint(0, 50, (3, 16))
    losses = []
    for _ in range(5):
        logits, loss = model(idx, idx)
        loss.backward()
        for pname, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert model.transformer.h[0].mlp.c_fc.weight.grad.abs().sum() > 0
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert logits.shape == (3, 16, 50)
    assert losses[-1] < losses[0] - 0.1, losses


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("d", [24, 128, 768])
def test_mlp_parameter_count_follows_the_formula(name, bias, d):
    mlp = MLP(GPTConfig(**{**SMALL, "n_embd": d, "n_head": 4}, bias=bias, activation=name))
    count = sum(p.numel() for p in mlp.parameters())
    gated = ACTIVATIONS[name].gated
    h = mlp_hidden(d, gated, bias)
    expected = (3 if gated else 2) * d * h + ((2 if gated else 1) * h + d if bias else 0)
    assert count == expected
    ungated = 8 * d * d + (5 * d if bias else 0)
    if gated:
        assert h % 8 == 0
        # as close to the ungated count as a multiple of 8 allows: one step of 8 moves it by 24d + 16
        assert abs(count - ungated) <= (3 * d * 8 + 16) / 2
    else:
        assert h == 4 * d and count == ungated
    if d == 768:
        assert h == (2048 if gated else 3072)  # Shazeer 2020's widths for d=768


def test_gelu_mlp_equals_plain_gelu_mlp():
    torch.manual_seed(0)
    cfg = GPTConfig(**SMALL, activation="gelu")
    mlp = MLP(cfg)
    ref = nn.Sequential(mlp.c_fc, nn.GELU(), mlp.c_proj)
    x = torch.randn(4, 7, 24)
    assert torch.equal(mlp(x), ref(x))


def test_gelu_tanh_is_the_tanh_approximation():
    torch.manual_seed(0)
    mlp = MLP(GPTConfig(**SMALL, activation="gelu_tanh"))
    x = torch.randn(4, 7, 24)
    assert torch.equal(mlp(x), mlp.c_proj(nn.GELU(approximate="tanh")(mlp.c_fc(x))))
    assert not torch.equal(mlp(x), mlp.c_proj(nn.GELU()(mlp.c_fc(x))))


@pytest.mark.parametrize("bias", [True, False])
def test_none_mlp_is_one_linear_map(bias):
    torch.manual_seed(0)
    mlp = MLP(GPTConfig(**SMALL, bias=bias, activation="none")).double()
    for p in mlp.parameters():  # random biases too, so the folded bias is exercised
        nn.init.normal_(p)
    folded = mlp.folded()
    x = torch.randn(5, 9, 24, dtype=torch.float64)
    assert folded.weight.shape == (24, 24)
    torch.testing.assert_close(folded(x), mlp(x), rtol=1e-10, atol=1e-10)
    assert sum(p.numel() for p in folded.parameters()) < sum(p.numel() for p in mlp.parameters())


def test_folding_refuses_nonlinear_mlps():
    with pytest.raises(ValueError, match="none"):
        MLP(GPTConfig(**SMALL, activation="relu")).folded()


def test_unknown_activation_fails_when_config_is_built():
    with pytest.raises(ValueError, match="unknown activation 'gelu2'; valid: gelu, gelu_tanh"):
        GPTConfig(activation="gelu2")


def test_weight_tying_and_scaled_init():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=64, vocab_size=100, n_layer=8, n_head=4, n_embd=256))
    assert model.lm_head.weight is model.transformer.wte.weight
    std = model.transformer.h[0].mlp.c_proj.weight.std().item()
    assert abs(std - 0.02 / (2 * 8) ** 0.5) < 0.001
    assert abs(model.transformer.h[0].mlp.c_fc.weight.std().item() - 0.02) < 0.001
    keys = set(model.state_dict())
    for k in ("transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight",
              "transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_proj.weight",
              "transformer.h.0.ln_2.weight", "transformer.h.0.mlp.c_fc.weight", "transformer.h.0.mlp.c_proj.weight",
              "transformer.ln_f.weight", "lm_head.weight"):
        assert k in keys


def test_optimizer_decays_matrices_only():
    model = GPT(GPTConfig(**SMALL))
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and all(p.dim() >= 2 for p in decay["params"])
    assert no_decay["weight_decay"] == 0.0 and all(p.dim() < 2 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_crop_block_size():
    model = GPT(GPTConfig(**SMALL))
    model.crop_block_size(8)
    assert model.transformer.wpe.weight.shape == (8, 24)
    model(torch.zeros(1, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="exceeds block_size 8"):
        model(torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.parametrize("prompt_len,new", [(1, 10), (5, 40), (20, 30)])
@pytest.mark.parametrize("name", ["gelu", "swiglu"])
def test_kv_cache_gives_the_same_tokens(prompt_len, new, name):
    """Within the window, across window slides (block 16, 40 new tokens), and with a prompt longer
    than the window."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SMALL, activation=name)).eval()
    idx = torch.randint(0, 50, (2, prompt_len))
    torch.manual_seed(1)
    cached = model.generate(idx, new, temperature=1.0, top_k=10, use_cache=True)
    torch.manual_seed(1)
    uncached = model.generate(idx, new, temperature=1.0, top_k=10, use_cache=False)
    assert cached.shape == (2, prompt_len + new)
    assert torch.equal(cached, uncached)


def test_cached_logits_match_full_forward():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SMALL)).eval()
    idx = torch.randint(0, 50, (2, 12))
    cache = model.new_cache(2, idx.device)
    model(idx[:, :7], cache=cache, pos=torch.arange(7))
    for t in range(7, 12):
        step_logits, _ = model(idx[:, t : t + 1], cache=cache, pos=torch.tensor([t]))
        full_logits, _ = model(idx[:, : t + 1])
        torch.testing.assert_close(step_logits, full_logits, rtol=1e-5, atol=1e-5)
    # one buffer per layer and kind, of block_size positions, written in place the whole run
    assert [k.shape[2] for k in cache.k + cache.v] == [model.config.block_size] * 4


def test_the_compiled_decode_step_writes_the_new_entries_only():
    """Compiled (inductor, here on the CPU), writing a step's keys and values must not copy a
    layer's whole cache: a 5-D buffer written through index_copy_ into one layer's view compiled to
    a full copy of every layer per token (38 MB per token at 124M)."""
    from torch._inductor.utils import run_and_get_code

    torch.manual_seed(0)
    model = GPT(GPTConfig(**SMALL)).eval()
    cache = model.new_cache(1, torch.device("cpu"))
    model(torch.randint(0, 50, (1, 5)), cache=cache, pos=torch.arange(5))
    cache.next.fill_(5)
    with torch.no_grad():
        _, code = run_and_get_code(torch.compile(model), torch.randint(0, 50, (1, 1)), cache=cache, pos=cache.next)
    code = "\n".join(code)
    layer = tuple(cache.k[0].shape)
    assert f"empty_strided_cpu({layer}" not in code.replace(" ", "").replace(",)", ")") and "copy_" not in code
    assert "index_put" in code


def test_decoding_keeps_positions_on_the_device(monkeypatch):
    """Each decoded token's position is advanced on the device: no new tensor is made from a host
    value per token (on a GPU, a blocking copy that keeps the CPU from running ahead)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SMALL)).eval()
    made = []
    real = torch.tensor
    monkeypatch.setattr(torch, "tensor", lambda *a, **k: made.append(a) or real(*a, **k))
    idx = torch.randint(0, 50, (1, 3))
    model.generate(idx, 10)
    assert made == []


def test_sampling_draws_from_the_softmax_of_the_top_k_logits_over_temperature(monkeypatch):
    """The distribution generate samples from, against its definition: softmax(logits / T) over the
    top_k largest logits, zero elsewhere (a top-k filter applied out of place, or a temperature
    applied twice, changes it)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SMALL)).eval()
    idx = torch.randint(0, 50, (2, 6))
    drawn = []
    real = torch.multinomial
    monkeypatch.setattr(torch, "multinomial", lambda p, **k: drawn.append(p.clone()) or real(p, **k))
    temperature, top_k = 0.7, 5
    model.generate(idx, 1, temperature=temperature, top_k=top_k, use_cache=False)
    with torch.no_grad():
        logits = model(idx, torch.zeros_like(idx))[0][:, -1, :]
    kept = logits >= logits.topk(top_k, dim=-1).values[:, [-1]]
    expected = torch.where(kept, torch.exp(logits / temperature), torch.zeros_like(logits))
    expected /= expected.sum(-1, keepdim=True)
    assert (drawn[0] > 0).sum(-1).tolist() == [top_k, top_k]
    torch.testing.assert_close(drawn[0], expected, rtol=1e-5, atol=1e-6)


def test_generate_rejects_bad_sampling_settings():
    model = GPT(GPTConfig(**SMALL))
    idx = torch.zeros(1, 1, dtype=torch.long)
    with pytest.raises(ValueError, match="temperature"):
        model.generate(idx, 1, temperature=0)
    with pytest.raises(ValueError, match="top_k"):
        model.generate(idx, 1, top_k=0)


@needs_fused_loss
def test_the_fused_loss_compiles_in_one_graph():
    """Compiled, the fused loss must not break the graph (torch warns when it turns on
    allow_retain_graph itself, and the warning breaks it), so fullgraph=True compiles too."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SMALL)).train()
    model.fused_loss = "torch"
    idx, targets = torch.randint(0, 50, (3, 16)), torch.randint(0, 50, (3, 16))
    assert torch._dynamo.explain(model)(idx, targets).graph_break_count == 0
    _, loss = torch.compile(model, fullgraph=True)(idx, targets)
    loss.backward()
    model.fused_loss = None
    torch.testing.assert_close(loss, model(idx, targets)[1], rtol=1e-5, atol=1e-5)


@pytest.fixture
def liger_stand_in(monkeypatch):
    """Liger Kernel's function as its documentation defines it (ignore_index -100 by default, the
    mean over the targets not ignored), in plain torch: Liger's own kernels are Triton, CUDA only.
    Records the dtypes and shapes it is handed, and whether the compiler was tracing it."""
    import sys
    import types

    calls = []

    def liger_fused_linear_cross_entropy(input, weight, target, bias=None, ce_weight=None, ignore_index=-100,
                                         reduction="mean", **rest):
        calls.append((input.dtype, weight.dtype, tuple(input.shape), tuple(target.shape),
                      torch.compiler.is_compiling()))
        logits = (input @ weight.t()).float()
        return torch.nn.functional.cross_entropy(logits, target, ignore_index=ignore_index, reduction=reduction)

    functional = types.ModuleType("liger_kernel.transformers.functional")
    functional.liger_fused_linear_cross_entropy = liger_fused_linear_cross_entropy
    for name in ("liger_kernel", "liger_kernel.transformers"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "liger_kernel.transformers.functional", functional)
    return calls


def test_liger_s_loss_runs_under_the_compiler_outside_its_graphs(liger_stand_in):
    """Compiled, the model hands Liger's loss to eager code (its kernels are Triton already; dynamo is
    kept out of its autograd Function): the compiled loss and gradients are the eager ones, and the
    stand-in is called as an eager function, with real tensors."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SMALL)).train()
    model.fused_loss = "liger"
    idx, targets = torch.randint(0, 50, (3, 16)), torch.randint(0, 50, (3, 16))
    _, eager = model(idx, targets)
    torch._dynamo.reset()
    _, compiled = torch.compile(model)(idx, targets)
    compiled.backward()
    assert [call[-1] for call in liger_stand_in] == [False, False]  # run eagerly both times, never traced
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)
    explained = torch._dynamo.explain(model)(idx, targets)
    assert explained.graph_break_count >= 1


@pytest.mark.parametrize("kernel", ["torch", "liger"])
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_fused_loss_matches_the_plain_one(kernel, dtype, tol, liger_stand_in):
    """Each fused loss (train.py's fused_loss; Liger's through a stand-in of its function) gives the
    plain loss and gradients, in float32 and under bf16 autocast, ignored targets (-1) included, is
    handed the hidden states and weights in the autocast dtype, and never returns logits."""
    if kernel == "torch" and not hasattr(torch.nn.functional, "linear_cross_entropy"):
        pytest.skip(f"torch's fused loss needs torch >= 2.13, here {torch.__version__}")
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SMALL)).train()
    idx, targets = torch.randint(0, 50, (3, 16)), torch.randint(0, 50, (3, 16))
    targets[0, :5] = -1
    results = []
    for fused in (None, kernel):
        model.fused_loss = fused
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            logits, loss = model(idx, targets)
        loss.backward()
        results.append((logits, loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (logits, plain, grads), (none, fused, fused_grads) = results
    assert none is None and logits.shape == (3, 16, 50)
    if kernel == "liger":
        assert liger_stand_in == [(dtype, dtype, (48, 24), (48,), False)]
    torch.testing.assert_close(fused, plain, rtol=tol, atol=tol)
    for a, b in zip(fused_grads, grads):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * b.abs().max().item())


def test_mup_off_is_the_standard_model():
    """mup_base_width=0 builds exactly the model of before: the same weights from the same seed, two
    optimizer groups, the attention and logits unscaled."""
    torch.manual_seed(0)
    a = GPT(GPTConfig(**SMALL))
    torch.manual_seed(0)
    b = GPT(GPTConfig(**SMALL, mup_base_width=0))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert len(b.configure_optimizers(0.1, 1e-3, (0.9, 0.95)).param_groups) == 2
    assert b.config.width_mult == 1.0 and b.transformer.h[0].attn.scale is None


def test_mup_scales_init_rates_attention_and_logits():
    """Width 96 on base 24 (m = 4), two heads at both: hidden matrices start half as large, learn at
    1/4 the rate and decay at 4x; embeddings, LayerNorms and biases as without µP; q.k times
    sqrt(d_base_head)/d_head = sqrt(12)/48; logits divided by 4."""
    config = GPTConfig(**{**SMALL, "n_embd": 96, "n_head": 2}, bias=True, mup_base_width=24, mup_base_head_dim=12)
    torch.manual_seed(0)
    mup = GPT(config)
    torch.manual_seed(0)
    sp = GPT(GPTConfig(**{**vars(config), "mup_base_width": 0, "mup_base_head_dim": 0}))
    for (name, p), q in zip(mup.named_parameters(), sp.parameters()):
        hidden = name.startswith("transformer.h.") and p.dim() >= 2
        torch.testing.assert_close(p, q / 2 if hidden else q, rtol=0, atol=0)
    groups = mup.configure_optimizers(0.1, 1e-3, (0.9, 0.95)).param_groups
    hidden = {id(p) for n, p in mup.named_parameters() if n.startswith("transformer.h.") and p.dim() >= 2}
    assert [g.get("lr_scale", 1.0) for g in groups] == [1.0, 1.0, 0.25]
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0, 0.4]
    assert {id(p) for p in groups[2]["params"]} == hidden
    assert mup.transformer.h[0].attn.scale == math.sqrt(12) / 48
    x = torch.randn(2, 5, 96)
    torch.testing.assert_close(mup.head(x)[0], sp.head(x)[0] / 4)


def test_mup_rates_follow_the_schedule_times_their_scale(char_dataset, tmp_path):
    """The training step gives each group the schedule's rate times its lr_scale, every iteration."""
    from types import SimpleNamespace

    from conftest import tiny

    from configurator import configure
    from training import loop, settings
    from training.batches import Batches
    from training.devices import autocast, resolve_device

    cfg = SimpleNamespace(**configure(settings.DEFAULTS, tiny(tmp_path, char_dataset, n_embd=64, n_head=2,
                                                              mup_base_width=16)))
    device = resolve_device(cfg)
    run = loop.build(cfg, device)
    batches = Batches(cfg.dataset, cfg.batch_size, cfg.block_size, "cpu", run.model.config.vocab_size)
    step = loop.Step(run.model, run.optimizer, run.scaler, batches, cfg,
                         SimpleNamespace(ddp=False, rank=0, world_size=1), autocast(device))
    for it in (0, 3, 17):
        step(it, loop.get_lr(it, cfg))
        lr = loop.get_lr(it, cfg)
        assert [g["lr"] for g in run.optimizer.param_groups] == [lr, lr, lr / 4]


def decode_inputs(model, idx, new):
    """What model.forward is handed at each decode step of generate with the cache: (token's data
    pointer, shape, stride, position's data pointer)."""
    seen = []

    def record(module, args, kwargs):
        if kwargs.get("cache") is not None and args[0].size(1) == 1:
            tok, pos = args[0], kwargs["pos"]
            seen.append((tok.data_ptr(), tuple(tok.shape), tok.stride(), pos.data_ptr()))

    handle = model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        model.generate(idx, new)
    finally:
        handle.remove()
    return seen


def test_the_decode_step_reads_fixed_buffers():
    """Under CUDA graphs, each new stride or address of an input is a new graph to record: a decode
    step handed a view of the growing sequence (its stride grows by one per token) recorded a graph
    for every generated token, and ran 3x slower than no cache on an H200. Every decode step must
    read the same token and position buffers, of one shape and stride."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(**SMALL)).eval()
    idx = torch.randint(0, 50, (2, 3))
    seen = decode_inputs(model, idx, 12)  # within the window (block 16)
    assert len(seen) == 11 and len(set(seen)) == 1
    # and so in the next generation, across window slides (the cache is the model's, kept)
    more = decode_inputs(model, idx, 40)
    assert len(more) > 30 and set(more) == set(seen)


def test_the_compiled_decode_step_is_compiled_once():
    """torch.compile on the CPU over 60 decoded tokens, window slides included: one graph for the
    prefill and one for the decode step, however many tokens (dynamo compiles a new graph for an
    input whose stride changes, until it gives up and makes the stride dynamic)."""
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    torch.manual_seed(0)
    model = GPT(GPTConfig(**{**SMALL, "block_size": 48})).eval()
    eager, counter = copy.deepcopy(model), CompileCounter()
    model.compile(backend=counter)
    prompt = torch.randint(0, 50, (1, 5))
    torch.manual_seed(1)
    compiled = model.generate(prompt, 60)
    assert counter.frame_count <= 2, f"{counter.frame_count} graphs compiled for 60 tokens"
    torch.manual_seed(1)
    assert torch.equal(compiled, eager.generate(prompt, 60, use_cache=False))
