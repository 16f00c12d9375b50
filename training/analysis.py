"""
What the MLPs of a trained GPT do, measured once when its run ends and written as analysis.json
beside the run's records, so that reports never need the checkpoint (which GPU-sized runs delete).

- Hidden units: the activation's output act(x W_fc) (in gated MLPs, the gate act(x W)) over a few
  validation batches: how many units never fire, how many outputs are exact zeros, their mean.
- Linear collapse ('none' only): every MLP folded into one n_embd x n_embd Linear (MLP.folded), and
  the largest change this makes to the logits, with the parameters before and after.
"""

import torch

BATCHES = 4  # validation batches through the final model; the first of train.py's evaluation batches


class UnitStats:
    """Running statistics of one MLP's activation output: a forward hook on its c_fc, which
    recomputes the activation from c_fc's output."""

    def __init__(self, mlp):
        self.mlp, self.active = mlp, None
        self.n = self.total = self.abs = self.zeros = 0

    def __call__(self, module, args, out):
        a = self.mlp.act(out.chunk(2, dim=-1)[0] if self.mlp.gated else out).flatten(0, -2).float()
        active = (a > 0).any(0)  # per unit: positive on some token
        self.active = active if self.active is None else self.active | active
        self.n += a.numel()
        self.total += a.sum().item()
        self.abs += a.abs().sum().item()
        self.zeros += (a == 0).sum().item()

    def result(self):
        return dict(dead=1 - self.active.float().mean().item(), mean=self.total / self.n,
                    zeros=self.zeros / self.n, abs=self.abs / self.n)


def hidden_units(model, batches):
    """UnitStats of every layer over the batches, and their mean over layers."""
    stats = [UnitStats(block.mlp) for block in model.transformer.h]
    handles = [block.mlp.c_fc.register_forward_hook(s) for block, s in zip(model.transformer.h, stats)]
    try:
        for x, y in batches:
            model(x, y)
    finally:
        for h in handles:
            h.remove()
    layers = [s.result() for s in stats]
    return dict(mean={k: sum(layer[k] for layer in layers) / len(layers) for k in layers[0]}, layers=layers)


def collapse(model, batch):
    """Logits of the model against those with every MLP folded into one Linear (activation 'none')."""
    x, y = batch
    logits = model(x, y)[0]
    blocks = model.transformer.h
    mlps = [block.mlp for block in blocks]
    mlp_before = sum(p.numel() for m in mlps for p in m.parameters())
    folded = [m.folded() for m in mlps]
    mlp_after = sum(p.numel() for m in folded for p in m.parameters())
    try:
        for block, f in zip(blocks, folded):
            block.mlp = f
        diff = (model(x, y)[0] - logits).abs().max().item()
    finally:
        for block, m in zip(blocks, mlps):
            block.mlp = m
    total = model.get_num_params()
    return dict(diff=diff, max_logit=logits.abs().max().item(), mlp_before=mlp_before, mlp_after=mlp_after,
                total_before=total, total_after=total - mlp_before + mlp_after)


@torch.no_grad()
def analyse(model, batches):
    """The analysis.json of a trained model (float32, eval mode) on a list of (x, y) batches."""
    was_training = model.training
    model.eval()
    try:
        out = dict(batches=len(batches), tokens=sum(x.numel() for x, _ in batches),
                   hidden_units=hidden_units(model, batches))
        if model.config.activation == "none":
            out["collapse"] = collapse(model, batches[0])
    finally:
        model.train(was_training)
    return out
