"""
The µP coordinate check: does every kind of layer output keep its size as the model widens?

    python -m tools.coord_check                                  # µP and standard, every activation
    python -m tools.coord_check --activations="['gelu']" --widths=[64,128,256]

For each parametrization (µP with base width `base_width`, and the standard one: GPT-2's init and
one learning rate for every weight), each activation and each width, a model of n_layer blocks with
heads of head_size dimensions trains `steps` steps at a constant learning rate on the same batches
(train.py's, keyed by the seed), and the mean absolute value of each kind of output is measured in
the forward pass of every step, averaged over layers: the token embedding, attention's output, the
MLP's hidden units (the activation's output), the MLP's output and the logits. Under µP these stay
flat as the width grows; under the standard parametrization they grow (Yang et al. 2022, "Tensor
Programs V", section 5).

Prints a table per parametrization and activation (each width's values at the last step, and their
spread: widest over narrowest) and writes OUT_DIR/coord_check.json and coord_check.png.
"""

import os
from types import SimpleNamespace

import torch

from configurator import configure
from model import ACTIVATIONS, GPT, GPTConfig
from training import files, rundir, tokenizer
from training.batches import Batches
from training.errors import UserError, run_main

DEFAULTS = dict(
    widths=[64, 128, 256, 512, 1024],  # n_embd of the models compared
    base_width=64,  # µP's base width (the standard parametrization ignores it)
    n_layer=2,  # blocks per model
    head_size=32,  # dimensions per attention head (n_head = width / head_size)
    activations=list(ACTIVATIONS),  # names from model.ACTIVATIONS
    steps=5,  # training steps measured (0 is the forward pass before any update)
    learning_rate=1e-3,  # constant AdamW rate (the base rate under µP)
    batch_size=12,  # sequences per step
    block_size=64,  # tokens per sequence
    dataset="shakespeare_char",  # a folder under data/, or a path to one
    seed=1,  # fixes the initial weights and the batches
    threads=0,  # CPU threads; 0 keeps torch's default
    out_dir="results/coord_check",  # where coord_check.json and coord_check.png go
)
KINDS = ("embedding", "attention", "mlp hidden", "mlp output", "logits")
PARAMETRIZATIONS = ("µP", "standard")


def validate(cfg):
    unknown = [a for a in cfg.activations if a not in ACTIVATIONS]
    if not cfg.activations or unknown:
        raise UserError(f"activations={cfg.activations!r}: name one or more of {', '.join(ACTIVATIONS)}")
    if len(cfg.widths) < 2 or any(w <= 0 or w % cfg.head_size for w in cfg.widths):
        raise UserError(f"widths={cfg.widths!r}: give two or more widths, each a multiple of head_size="
                        f"{cfg.head_size}")
    for key in ("base_width", "n_layer", "head_size", "steps", "batch_size", "block_size"):
        if getattr(cfg, key) <= 0:
            raise UserError(f"{key}={getattr(cfg, key)} must be a positive integer")
    if not cfg.learning_rate > 0:
        raise UserError(f"learning_rate={cfg.learning_rate} must be > 0")


def hooks(model, sizes):
    """Forward hooks adding each kind of output's mean |x| (averaged over layers) to sizes[kind]."""
    blocks = model.transformer.h

    def add(kind, tensor, share=1.0):
        sizes[kind] += share * tensor.detach().abs().mean().item()

    def hidden(mlp):
        return lambda m, args, out: add("mlp hidden", mlp.act(out.chunk(2, dim=-1)[0] if mlp.gated else out),
                                        1 / len(blocks))

    handles = [model.transformer.wte.register_forward_hook(lambda m, args, out: add("embedding", out)),
               model.lm_head.register_forward_hook(lambda m, args, out: add("logits", out))]
    for block in blocks:
        handles += [block.attn.register_forward_hook(lambda m, args, out: add("attention", out, 1 / len(blocks))),
                    block.mlp.c_fc.register_forward_hook(hidden(block.mlp)),
                    block.mlp.register_forward_hook(lambda m, args, out: add("mlp output", out, 1 / len(blocks)))]
    return handles


def measure(cfg, batches, width, activation, mup):
    """{kind: [mean |output| at each step]} for one model."""
    torch.manual_seed(cfg.seed)
    model = GPT(GPTConfig(n_layer=cfg.n_layer, n_head=width // cfg.head_size, n_embd=width,
                          block_size=cfg.block_size, vocab_size=batches.vocab_size, bias=False, dropout=0.0,
                          activation=activation, mup_base_width=cfg.base_width if mup else 0))
    optimizer = model.configure_optimizers(0.0, cfg.learning_rate, (0.9, 0.95))
    for group in optimizer.param_groups:  # as the training step sets them: the schedule's rate times lr_scale
        group["lr"] = cfg.learning_rate * group.get("lr_scale", 1.0)
    curves = {kind: [] for kind in KINDS}
    for step in range(cfg.steps + 1):
        sizes = dict.fromkeys(KINDS, 0.0)
        handles = hooks(model, sizes)
        _, x, y = next(batches.train(cfg.seed, step, 1))
        _, loss = model(x, y)
        for h in handles:
            h.remove()
        for kind in KINDS:
            curves[kind].append(sizes[kind])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return curves


def spread(values):
    return max(values) / min(values)


def run(cfg):
    """{parametrization: {activation: {width: {kind: [size per step]}}}}."""
    batches = Batches(cfg.dataset, cfg.batch_size, cfg.block_size, "cpu", 2**16)
    batches.vocab_size = tokenizer.for_dataset(batches.folder).model_vocab_size
    return {p: {a: {w: measure(cfg, batches, w, a, p == "µP") for w in cfg.widths} for a in cfg.activations}
            for p in PARAMETRIZATIONS}


def table(cfg, results):
    lines = []
    for p, by_activation in results.items():
        lines += ["", f"{p}: mean |output| at step {cfg.steps}, widths {cfg.widths}; spread = widest / narrowest"]
        for a, by_width in by_activation.items():
            cells = [f"{kind} " + " ".join(f"{by_width[w][kind][-1]:.3g}" for w in cfg.widths)
                     + f" ({spread([by_width[w][kind][-1] for w in cfg.widths]):.2f}x)" for kind in KINDS]
            lines.append(f"  {a:<10} " + "; ".join(cells))
    return lines


def figure(cfg, results, path):
    from experiment.figures import plt, save_figure

    # one y-axis per kind of output, shared by the parametrizations, so that flat and growing compare
    fig, axes = plt.subplots(len(PARAMETRIZATIONS), len(KINDS), figsize=(3.6 * len(KINDS), 3.2 * 2), squeeze=False,
                             sharey="col")
    for row, p in zip(axes, PARAMETRIZATIONS):
        for ax, kind in zip(row, KINDS):
            for i, (a, by_width) in enumerate(results[p].items()):
                ax.plot(cfg.widths, [by_width[w][kind][-1] for w in cfg.widths], "o-", color=f"C{i % 10}", label=a,
                        markersize=3)
            ax.set(xscale="log", yscale="log", xlabel="width", title=f"{p}: {kind}")
            ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"mean |output| at step {cfg.steps}")
    axes[1][0].set_ylabel(f"mean |output| at step {cfg.steps}")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv):
    cfg = SimpleNamespace(**configure(DEFAULTS, argv, __doc__, [__file__]))
    validate(cfg)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    results = run(cfg)
    print("\n".join(table(cfg, results)))
    os.makedirs(cfg.out_dir, exist_ok=True)
    files.write_json(os.path.join(cfg.out_dir, "coord_check.json"),
                     dict(settings=vars(cfg), cpu=rundir.cpu_name(), torch=torch.__version__, results=results))
    figure(cfg, results, os.path.join(cfg.out_dir, "coord_check.png"))
    print(f"\nwrote {cfg.out_dir}/coord_check.json and coord_check.png")
    return 0


if __name__ == "__main__":
    run_main(main)
