"""
GPT-2 weights in and out, through transformers (an optional dependency, imported only here).

In:  load_pretrained('gpt2-xl') or load_pretrained(DIR): OpenAI's GPT-2 (Hugging Face hub ids,
     through the HF cache, so HF_HUB_OFFLINE works once it is filled) or any transformers GPT-2
     saved in a directory. Another MLP activation may be asked for: the same weights run through it.
Out: python -m training.hf --out_dir=out-shakespeare --to=gpt2-shakespeare
     writes a checkpoint trained here as a transformers GPT-2 directory (config.json + weights).

Parameter names are GPT-2's on both sides. The one difference is that transformers keeps GPT-2's
linear layers as Conv1D, whose weight is (in, out): the transpose of nn.Linear's (out, in).
"""

import math
import os
from types import SimpleNamespace

import torch

from configurator import configure
from model import ACTIVATIONS, GPT, GPTConfig
from training import checkpoint, files, rundir
from training.errors import UserError, run_main
from training.tokenizer import EOT

# OpenAI's four GPT-2s; all have vocab 50257, 1024 positions, biases and the tanh GELU.
GPT2_SHAPES = {
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768),  # 124M parameters
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024),  # 350M
    "gpt2-large": dict(n_layer=36, n_head=20, n_embd=1280),  # 774M
    "gpt2-xl": dict(n_layer=48, n_head=25, n_embd=1600),  # 1558M
}
# transformers' activation_function -> ours. 'gelu_new' is GPT-2's tanh approximation written out
# as a formula; 'gelu_pytorch_tanh' is the same function computed by F.gelu(approximate='tanh').
IMPORTABLE = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}
# Ours -> transformers'. An export is a GPT-2, and a GPT-2's MLP is a GELU: other activations
# would load in transformers but surprise every tool that reads GPT-2 files.
EXPORTABLE = {"gelu": "gelu", "gelu_tanh": "gelu_new"}
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# GPT2Config settings our GPT has no knob for, each with the value our GPT always computes.
FIXED = dict(scale_attn_weights=True, scale_attn_by_inverse_layer_idx=False, layer_norm_epsilon=1e-5,
             tie_word_embeddings=True, add_cross_attention=False)


def check_init_from(init_from, ours):
    """A one-line error unless init_from is one of ours ('scratch', 'resume', ...), one of OpenAI's
    GPT-2 names, or a folder (which load_pretrained checks when it reads it)."""
    if init_from not in ours + tuple(GPT2_SHAPES) and not os.path.isdir(init_from):
        raise UserError(f"init_from={init_from!r} is not valid; choose {', '.join(ours)}, one of "
                        f"{', '.join(GPT2_SHAPES)}, or a folder holding a transformers GPT-2")


def require_transformers():
    try:
        import transformers
    except ImportError:
        raise UserError("GPT-2 weights go in and out through transformers: pip install transformers") from None
    transformers.logging.set_verbosity_error()  # our own errors say what went wrong, in one line
    return transformers


def fetch(cls, name_or_path, **kwargs):
    """cls.from_pretrained for one of OpenAI's GPT-2 names or a local directory, with one-line errors."""
    hub = name_or_path in GPT2_SHAPES
    if not hub and not os.path.isdir(name_or_path):
        raise UserError(f"{name_or_path!r} is neither a GPT-2 name ({', '.join(GPT2_SHAPES)}) nor a directory "
                        "holding a transformers GPT-2 (config.json + weights)")
    if not hub and not os.path.isfile(os.path.join(name_or_path, "config.json")):
        raise UserError(f"{name_or_path} has no config.json, so it holds no transformers GPT-2 "
                        "(save_pretrained and python -m training.hf write one)")
    from safetensors import SafetensorError  # installed with transformers; raised for a damaged weights file

    try:
        return cls.from_pretrained(name_or_path, **kwargs)
    except (OSError, SafetensorError, TypeError, ValueError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        if hub:
            raise UserError(f"cannot fetch {name_or_path} ({reason}); run once online to fill the Hugging Face "
                            "cache (HF_HOME), or give a local directory holding a transformers GPT-2") from None
        raise UserError(f"cannot load a GPT-2 from {name_or_path} ({reason}); it needs config.json and "
                        "weights (model.safetensors or pytorch_model.bin) as save_pretrained writes them") from None


def gpt_config(hf_config, source, activation=None, dropout=0.0):
    """Our GPTConfig for a transformers GPT2Config; activation None keeps the trained one."""
    if hf_config.model_type != "gpt2":
        raise UserError(f"{source} holds a {hf_config.model_type!r} model, not a GPT-2")
    odd = [f"{k}={getattr(hf_config, k)!r}" for k, v in FIXED.items() if getattr(hf_config, k, v) != v]
    if hf_config.n_inner not in (None, 4 * hf_config.n_embd):
        odd.append(f"n_inner={hf_config.n_inner}")
    if odd:
        raise UserError(f"{source} is a GPT-2 variant this GPT cannot represent ({', '.join(odd)})")
    trained = IMPORTABLE.get(hf_config.activation_function)
    if trained is None:
        raise UserError(f"{source} uses activation_function={hf_config.activation_function!r}; "
                        f"only GPT-2s with {', '.join(map(repr, IMPORTABLE))} can be loaded")
    activation = activation or trained
    if activation not in ACTIVATIONS:
        raise UserError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
    if ACTIVATIONS[activation].gated:
        ungated = [name for name, a in ACTIVATIONS.items() if not a.gated]
        raise UserError(f"activation {activation!r} is gated: its c_fc has another shape than GPT-2's, so "
                        f"{source}'s weights cannot be grafted onto it; choose one of {', '.join(ungated)}")
    try:
        return GPTConfig(block_size=hf_config.n_positions, vocab_size=hf_config.vocab_size, n_layer=hf_config.n_layer,
                         n_head=hf_config.n_head, n_embd=hf_config.n_embd, dropout=dropout, bias=True,
                         activation=activation)
    except ValueError as e:
        raise UserError(f"{source} holds a GPT-2 this GPT cannot build: {e}") from None


def pretrained_config(name_or_path, activation=None, dropout=0.0):
    """The GPTConfig load_pretrained would build, without the weights: for OpenAI's GPT-2s from
    their published shapes (nothing is downloaded), for a directory from its config.json.
    Its .activation with activation=None is the one the weights were trained with."""
    transformers = require_transformers()
    if name_or_path in GPT2_SHAPES:
        hf_config = transformers.GPT2Config(**GPT2_SHAPES[name_or_path])
    else:
        hf_config = fetch(transformers.GPT2Config, name_or_path)
    return gpt_config(hf_config, name_or_path, activation, dropout)


def load_pretrained(name_or_path, activation=None, dropout=0.0):
    """Our GPT holding a transformers GPT-2's weights.

    name_or_path: 'gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl', or a directory.
    activation: None keeps the one it was trained with (gelu_tanh for OpenAI's). Another ungated
    name is surgery: every weight as trained, the MLPs computing a different function.
    """
    transformers = require_transformers()
    hf_config = fetch(transformers.GPT2Config, name_or_path)
    config = gpt_config(hf_config, name_or_path, activation, dropout)
    hf_model, info = fetch(transformers.GPT2LMHeadModel, name_or_path, config=hf_config, output_loading_info=True)
    missing = sorted(info["missing_keys"])  # transformers leaves these at their random initialisation
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise UserError(f"{name_or_path}'s weights are incomplete: {missing[0]}{more} missing")
    theirs = hf_model.state_dict()
    model = GPT(config)
    model.load_state_dict({k: theirs[k].t() if k.endswith(CONV1D) else theirs[k] for k in model.state_dict()})
    return model


def exported_weights(model, hf_state):
    """Our weights under transformers' names and layouts. A µP model's multipliers are folded into
    its weights, so that a transformers GPT-2 computes the same logits: the output multiplier α_out/m
    into ln_f (lm_head(ln_f(x)) α_out/m is lm_head of ln_f scaled by α_out/m), and attention's scale
    into the queries (transformers divides q.k by sqrt(d_head), so q is multiplied by the scale times
    sqrt(d_head)). α_in cannot be folded: the token embeddings are the readout's weights too."""
    ours, cfg = model.state_dict(), model.config
    if cfg.mup_input_mult != 1:
        raise UserError(f"mup_input_mult={cfg.mup_input_mult}: transformers' GPT-2 has no embedding multiplier, and "
                        "the embeddings (tied to the output layer) cannot take it; only α_in = 1 exports")
    if cfg.mup_base_width:
        ours = {k: v.clone() for k, v in ours.items()}
        for key in ("transformer.ln_f.weight", "transformer.ln_f.bias"):
            if key in ours:
                ours[key] *= cfg.mup_output_mult / cfg.width_mult
        scale = cfg.attention_scale
        for i in range(cfg.n_layer):
            for kind in ("weight", "bias"):
                if scale is not None and (key := f"transformer.h.{i}.attn.c_attn.{kind}") in ours:
                    ours[key][:cfg.n_embd] *= scale * math.sqrt(cfg.n_embd // cfg.n_head)
    out = {}
    for name, t in hf_state.items():
        if name not in ours and name.endswith(".bias") and not model.config.bias:
            out[name] = torch.zeros_like(t)  # transformers' GPT-2 always has biases; zeros add nothing
        else:
            out[name] = ours[name].t() if name.endswith(CONV1D) else ours[name]
    return out


def export(model, out_dir):
    """Write model (a GPT, not torch.compile'd) as a transformers GPT-2 directory: config.json and
    weights via save_pretrained, written beside out_dir and renamed into place when complete (files.py)."""
    cfg = model.config
    if cfg.activation not in EXPORTABLE:
        raise UserError(f"cannot export activation {cfg.activation!r}: a GPT-2's MLP is a GELU, so only "
                        "gelu (as 'gelu') and gelu_tanh (as 'gelu_new') can be exported")
    if os.path.exists(out_dir) and not (os.path.isdir(out_dir) and not os.listdir(out_dir)):
        raise UserError(f"{out_dir} already exists and is not empty; remove it or choose another directory")
    parent = os.path.dirname(os.path.abspath(out_dir))
    if not os.path.isdir(parent):
        raise UserError(f"cannot write {out_dir}: {parent} is not a folder; create it or choose another destination")
    transformers = require_transformers()
    # <|endoftext|> is an id of GPT-2's BPE only (a padded vocabulary keeps it, a char-level one has none).
    eot = EOT if cfg.vocab_size > EOT else None
    hf_config = transformers.GPT2Config(
        vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_layer=cfg.n_layer, n_head=cfg.n_head,
        n_embd=cfg.n_embd, activation_function=EXPORTABLE[cfg.activation], resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout, bos_token_id=eot, eos_token_id=eot,
    )
    hf_model = transformers.GPT2LMHeadModel(hf_config)
    hf_model.load_state_dict(exported_weights(model, hf_model.state_dict()))
    files.atomic_folder(out_dir, hf_model.save_pretrained)


DEFAULTS = dict(
    out_dir="out",  # the training run whose checkpoint is exported
    checkpoint=rundir.CKPT,  # or best.pt, the checkpoint with the best val loss
    to="",  # the directory to write (required); it must not exist, or be empty
)


def main(argv):
    cfg = SimpleNamespace(**configure(DEFAULTS, argv, __doc__, [__file__]))
    if not cfg.to:
        raise UserError("no destination; give --to=DIR, the directory to write the transformers GPT-2 to")
    model = checkpoint.build_model(checkpoint.load(rundir.path(cfg.out_dir, cfg.checkpoint)))
    export(model, cfg.to)
    print(f"wrote {cfg.to}: a transformers GPT-2 (activation_function {EXPORTABLE[model.config.activation]!r}, "
          f"vocab {model.config.vocab_size}, {model.config.block_size} positions); "
          f"load it with GPT2LMHeadModel.from_pretrained({cfg.to!r})")


if __name__ == "__main__":
    run_main(main)
