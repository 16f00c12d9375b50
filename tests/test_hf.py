"""hf.py: GPT-2 weights in and out of transformers, offline, on small random models.

Imports give the logits transformers gives, for several shapes and both GELUs; exports give
transformers the logits we give, with and without biases; surgery swaps the activation and nothing
else; what cannot be loaded or exported is refused in one line; the export CLI works end to end.

Tolerance: both sides run in float32 with different kernels (Conv1D's addmm against nn.Linear,
transformers' tanh-GELU formula against F.gelu), so logits of size 1-2 differ by a few ulps: up to
8e-7 here with the tanh GELU, none with the exact one. ATOL = RTOL = 1e-5 (|a - b| <= 1e-5 + 1e-5|b|,
about 3e-5 at most here) leaves a margin of 10 or more, and still fails a swapped GELU, whose
logits differ by 8e-5 to 3e-4 on these models (test_tolerance_tells_the_gelus_apart).
"""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, run, tiny
from torch.nn import functional as F

from model import GPT, GPTConfig
from training import checkpoint, hf
from training.errors import UserError

transformers = pytest.importorskip("transformers")
save_safetensors = pytest.importorskip("safetensors.torch").save_file  # installed with transformers
ATOL = RTOL = 1e-5
SHAPES = [  # (n_layer, n_head, n_embd, n_positions, vocab_size)
    (1, 1, 8, 8, 11),
    (3, 4, 32, 32, 65),
    (2, 3, 24, 16, 257),
]


def randomize(model, std=0.3):
    """Every parameter drawn at random, so a bias or LayerNorm gain left at its init (0 or 1),
    or copied to the wrong place, changes the logits; std 0.3 puts MLP inputs where GELUs differ."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, std)
    return model.eval()


def hf_dir(tmp_path, shape, activation_function):
    n_layer, n_head, n_embd, n_positions, vocab_size = shape
    config = transformers.GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd, n_positions=n_positions,
                                     vocab_size=vocab_size, activation_function=activation_function,
                                     bos_token_id=None, eos_token_id=None)
    theirs = randomize(transformers.GPT2LMHeadModel(config))
    path = tmp_path / "hf"
    theirs.save_pretrained(path)
    return str(path), theirs


@torch.no_grad()
def logits(model, x):
    """All positions' logits from ours (GPT) or theirs (GPT2LMHeadModel)."""
    if isinstance(model, GPT):
        return model(x, x)[0]  # with targets, forward returns every position
    return model(x).logits


def tokens(vocab_size, T):
    return torch.randint(0, vocab_size, (2, T), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("activation_function, ours", [("gelu_new", "gelu_tanh"), ("gelu", "gelu")])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_import_matches_transformers(tmp_path, shape, activation_function, ours):
    path, theirs = hf_dir(tmp_path, shape, activation_function)
    model = hf.load_pretrained(path, activation=ours).eval()
    n_layer, n_head, n_embd, n_positions, vocab_size = shape
    assert model.config == GPTConfig(block_size=n_positions, vocab_size=vocab_size, n_layer=n_layer,
                                     n_head=n_head, n_embd=n_embd, bias=True, activation=ours)
    assert hf.load_pretrained(path).config.activation == ours  # None keeps the trained activation
    assert hf.pretrained_config(path) == model.config
    x = tokens(vocab_size, n_positions)
    torch.testing.assert_close(logits(model, x), logits(theirs, x), atol=ATOL, rtol=RTOL)


def test_import_of_the_hub_layout(tmp_path):
    """OpenAI's GPT-2s on the hub predate save_pretrained's layout: their weights are the base model's
    (no 'transformer.' prefix, no lm_head, which is tied) plus old transformers' causal-mask buffers,
    and config.json has n_ctx. None of that may leave a weight at its random initialisation."""
    n_layer, n_head, n_embd, n_positions, vocab_size = SHAPES[1]
    _, theirs = hf_dir(tmp_path, SHAPES[1], "gelu_new")
    state = {k.removeprefix("transformer."): t for k, t in theirs.state_dict().items() if k != "lm_head.weight"}
    for i in range(n_layer):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(n_positions, n_positions)).view(1, 1, n_positions, -1)
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    hub = tmp_path / "hub"
    hub.mkdir()
    save_safetensors(state, hub / "model.safetensors", metadata={"format": "pt"})
    (hub / "config.json").write_text(json.dumps(dict(
        activation_function="gelu_new", architectures=["GPT2LMHeadModel"], model_type="gpt2", layer_norm_epsilon=1e-5,
        n_ctx=n_positions, n_positions=n_positions, n_embd=n_embd, n_head=n_head, n_layer=n_layer,
        vocab_size=vocab_size, attn_pdrop=0.1, embd_pdrop=0.1, resid_pdrop=0.1)))
    model = hf.load_pretrained(str(hub)).eval()
    x = tokens(vocab_size, n_positions)
    torch.testing.assert_close(logits(model, x), logits(theirs, x), atol=ATOL, rtol=RTOL)
    del state["ln_f.bias"]  # a file without it would leave the bias at its initialisation
    save_safetensors(state, hub / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(UserError, match="incomplete: transformer.ln_f.bias missing"):
        hf.load_pretrained(str(hub))


def test_tolerance_tells_the_gelus_apart(tmp_path):
    path, theirs = hf_dir(tmp_path, SHAPES[1], "gelu_new")
    x = tokens(SHAPES[1][4], SHAPES[1][3])
    exact = hf.load_pretrained(path, activation="gelu").eval()
    assert not torch.allclose(logits(exact, x), logits(theirs, x), atol=ATOL, rtol=RTOL)


def test_surgery_swaps_the_activation_only(tmp_path):
    path, _ = hf_dir(tmp_path, SHAPES[1], "gelu_new")
    trained = hf.load_pretrained(path)
    relu = hf.load_pretrained(path, activation="relu", dropout=0.1)
    assert relu.config.activation == "relu" and relu.config.dropout == 0.1
    assert all(block.mlp.act is F.relu for block in relu.transformer.h)
    assert trained.state_dict().keys() == relu.state_dict().keys()
    for name, t in trained.state_dict().items():
        assert torch.equal(t, relu.state_dict()[name]), name


@pytest.mark.parametrize("activation, words", [("swiglu", "gated"), ("bilinear", "gated"), ("tanh", "unknown")])
def test_surgery_refusals(tmp_path, activation, words):
    path, _ = hf_dir(tmp_path, SHAPES[0], "gelu_new")
    for call in (hf.load_pretrained, hf.pretrained_config):
        with pytest.raises(UserError, match=words) as e:
            call(path, activation=activation)
        assert activation in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("activation, bias, vocab_size", [
    ("gelu", True, 65), ("gelu", False, 50304), ("gelu_tanh", True, 50304), ("gelu_tanh", False, 65),
])
def test_export_matches_ours(tmp_path, activation, bias, vocab_size):
    config = GPTConfig(n_layer=2, n_head=2, n_embd=16, block_size=12, vocab_size=vocab_size, bias=bias,
                       activation=activation)
    model = randomize(GPT(config))
    out = tmp_path / "export"
    hf.export(model, str(out))
    assert os.listdir(tmp_path) == ["export"]  # the temporary directory was renamed, not left behind
    theirs = transformers.GPT2LMHeadModel.from_pretrained(out).eval()
    assert theirs.config.activation_function == {"gelu": "gelu", "gelu_tanh": "gelu_new"}[activation]
    assert (theirs.config.vocab_size, theirs.config.n_positions) == (vocab_size, 12)
    assert theirs.config.eos_token_id == (50256 if vocab_size > 50256 else None)
    if not bias:
        assert all(not p.any() for n, p in theirs.named_parameters() if n.endswith(".bias"))
    x = tokens(vocab_size, 12)
    torch.testing.assert_close(logits(theirs, x), logits(model, x), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("bias", [True, False])
def test_a_mup_model_exports_with_its_multipliers_folded_in(tmp_path, bias):
    """µP divides the logits by the width multiplier and q.k by d_head; transformers' GPT-2 has no
    such knobs, so the export folds them into ln_f and the queries: the same logits."""
    config = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=12, vocab_size=65, bias=bias, activation="gelu",
                       mup_base_width=8)
    model = randomize(GPT(config))
    hf.export(model, str(tmp_path / "export"))
    theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "export").eval()
    x = tokens(65, 12)
    torch.testing.assert_close(logits(theirs, x), logits(model, x), atol=ATOL, rtol=RTOL)
    plain = GPT(GPTConfig(**{**vars(config), "mup_base_width": 0}))
    plain.load_state_dict(model.state_dict())  # the same weights without µP's multipliers differ
    assert not torch.allclose(logits(plain, x), logits(model, x), atol=1e-3)


@pytest.mark.parametrize("activation", ["relu", "none", "swiglu"])
def test_export_refuses_other_activations(tmp_path, activation):
    model = GPT(GPTConfig(n_layer=1, n_head=1, n_embd=8, block_size=8, vocab_size=11, activation=activation))
    with pytest.raises(UserError) as e:
        hf.export(model, str(tmp_path / "export"))
    message = str(e.value)
    assert "\n" not in message and repr(activation) in message and "gelu" in message and "gelu_tanh" in message
    assert os.listdir(tmp_path) == []


def test_export_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    model = GPT(GPTConfig(n_layer=1, n_head=1, n_embd=8, block_size=8, vocab_size=11))
    with pytest.raises(UserError, match="not empty"):
        hf.export(model, str(tmp_path))
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_pretrained_shapes_without_download():
    # Parameter counts of OpenAI's checkpoints (wte tied with lm_head, wpe included).
    expected = {"gpt2": 124_439_808, "gpt2-medium": 354_823_168, "gpt2-large": 774_030_080,
                "gpt2-xl": 1_557_611_200}
    for name, n_params in expected.items():
        config = hf.pretrained_config(name)
        assert (config.vocab_size, config.block_size, config.bias, config.activation) == (50257, 1024, True,
                                                                                         "gelu_tanh")
        with torch.device("meta"):
            assert GPT(config).get_num_params(non_embedding=False) == n_params, name


def test_what_cannot_be_loaded(tmp_path):
    with pytest.raises(UserError, match="neither a GPT-2 name"):
        hf.load_pretrained("gpt3")
    with pytest.raises(UserError, match="has no config.json"):
        hf.load_pretrained(str(tmp_path))
    refusals = [("activation_function='relu'", dict(activation_function="relu")), ("n_inner=16", dict(n_inner=16)),
                ("cannot load a GPT-2 from", {})]  # the last: a config.json without weights
    for i, (words, settings) in enumerate(refusals):
        folder = tmp_path / f"config{i}"
        transformers.GPT2Config(n_layer=1, n_head=1, n_embd=8, **settings).save_pretrained(folder)
        with pytest.raises(UserError, match=words):
            hf.load_pretrained(str(folder))
    path, _ = hf_dir(tmp_path, SHAPES[0], "gelu_new")
    weights = tmp_path / "hf" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # a copy cut short
    with pytest.raises(UserError, match="cannot load a GPT-2 from"):
        hf.load_pretrained(path)


def test_missing_transformers(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` fail
    model = GPT(GPTConfig(n_layer=1, n_head=1, n_embd=8, block_size=8, vocab_size=11))
    for call in (lambda: hf.load_pretrained("gpt2"), lambda: hf.pretrained_config("gpt2"),
                 lambda: hf.export(model, "unused")):
        with pytest.raises(UserError, match="pip install transformers") as e:
            call()
        assert "\n" not in str(e.value)


def test_hub_name_offline_with_an_empty_cache(tmp_path):
    # A fresh process: huggingface_hub reads HF_HUB_OFFLINE and HF_HOME when first imported.
    code = "from training import hf\ntry:\n    hf.load_pretrained('gpt2')\nexcept hf.UserError as e:\n    print(e)"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    message = r.stdout.strip()
    assert "\n" not in message and "cannot fetch gpt2" in message
    assert "run once online" in message and "local directory" in message


def test_cli_exports_a_trained_checkpoint(char_dataset, tmp_path):
    out, to = tmp_path / "run", tmp_path / "hf"
    r = run("train.py", *tiny(out, char_dataset, max_iters=2, eval_interval=2))
    assert r.returncode == 0, r.stderr
    r = run("-m", "training.hf", f"--out_dir={out}", f"--to={to}", env={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr
    assert f"wrote {to}" in r.stdout
    model = checkpoint.build_model(checkpoint.load(str(out / "ckpt.pt"))).eval()
    theirs = transformers.GPT2LMHeadModel.from_pretrained(to).eval()
    assert theirs.config.activation_function == "gelu"  # train.py's default activation
    x = tokens(model.config.vocab_size, model.config.block_size)
    torch.testing.assert_close(logits(theirs, x), logits(model, x), atol=ATOL, rtol=RTOL)


def test_a_fine_tune_resumes(char_dataset, tmp_path):
    """A run started from GPT-2 weights records where it started, and a restart continues it."""
    chars = len(json.loads((char_dataset / "meta.json").read_text(encoding="utf-8"))["itos"])
    path, _ = hf_dir(tmp_path, (2, 2, 32, 32, chars), "gelu_new")  # exported from a model of these characters
    out = tmp_path / "run"
    r = run("train.py", *tiny(out, char_dataset, init_from=path, max_iters=4, eval_interval=2))
    assert r.returncode == 0, r.stderr
    assert checkpoint.load(str(out / "ckpt.pt"))["pretrained"] == path
    r = run("train.py", *tiny(out, char_dataset, init_from="auto", max_iters=6, eval_interval=2))
    assert r.returncode == 0, r.stderr
    assert f"resuming from {out}/ckpt.pt at iteration 4" in r.stdout
