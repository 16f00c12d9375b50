"""
What a run will cost, before it starts: `python train.py CONFIG --dry_run=True`.

The model is built on the meta device (no memory, no data read), so even GPT-2 XL is planned
on a laptop in a second. Parameter counts and FLOPs are exact; activation memory is an estimate.
"""

import os
import platform

import torch

import runtime
from model import ACTIVATIONS, GPT, mlp_hidden

# Dense bf16 tensor-core peak from NVIDIA's datasheets (no sparsity), FLOP/s.
DATASHEET_PEAK_FLOPS = {
    "H200": 989e12,
    "H100": 989e12,  # SXM; the PCIe card is 756e12
    "A100": 312e12,
    "A10G": 125e12,
    "L4": 121e12,
    "4090": 165e12,
    "3090": 71e12,
}


def cpu_name():
    """The CPU's model name, as /proc/cpuinfo gives it where there is one."""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def datasheet_peak_flops(device):
    """Datasheet bf16 peak of a known CUDA GPU, else None."""
    if torch.device(device).type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in DATASHEET_PEAK_FLOPS.items() if key in name), None)


def activation_bytes(cfg, model_cfg, dtype_bytes):
    """Estimated bytes of activations kept for backward, per token, without recomputation.

    Per layer, from the tensors autograd saves: the fp32 residual stream entering both
    LayerNorms (2 x 4h), the low-precision inputs of c_attn, attention's q, k, v and output,
    and c_proj (2h each, 6 tensors: 12h), plus the MLP's c_fc input (2h) and its c_fc output
    and activation output (2 x fc_width). Attention through SDPA stores no T x T scores.
    Final layer: ln_f and lm_head inputs, and logits kept for the loss (low precision + fp32).
    """
    h, L, V = model_cfg.n_embd, model_cfg.n_layer, model_cfg.vocab_size
    gated = ACTIVATIONS[model_cfg.activation].gated
    fc_width = mlp_hidden(h, gated, model_cfg.bias) * (2 if gated else 1)
    per_layer = 8 * h + (6 + 1) * dtype_bytes * h + 2 * dtype_bytes * fc_width
    if cfg.dropout > 0:
        per_layer += 2 * h  # one byte per element for each of the two residual dropout masks
    final = 4 * h + dtype_bytes * h + (dtype_bytes + 4) * V
    return L * per_layer + final


def plan(cfg, model_cfg, world_size):
    """Print the plan of a run; return the estimated GiB per GPU."""
    with torch.device("meta"):
        model = GPT(model_cfg)
    n_all, n_no_pos = model.get_num_params(non_embedding=False), model.get_num_params()
    tokens_per_iter = runtime.tokens_per_iter(cfg)
    fpt = model.flops_per_token()
    low_precision = cfg.dtype in ("bfloat16", "float16") or cfg.dtype == "auto"
    dtype_bytes = 2 if low_precision else 4
    gib = 2**30
    tokens = cfg.batch_size * cfg.block_size
    weights = 4 * n_all
    # autocast keeps a low-precision copy of each weight for the forward pass
    cast = dtype_bytes * n_all if low_precision else 0
    if cfg.eval_only:  # no gradients or optimizer; of the activations only the logits stay at once
        grads = adam = 0
        acts = (dtype_bytes + 4) * model_cfg.vocab_size * tokens
    else:
        grads, adam = 4 * n_all, 8 * n_all
        acts = activation_bytes(cfg, model_cfg, dtype_bytes) * tokens
    total = weights + grads + adam + cast + acts
    divisors = [w for w in (1, 2, 4, 8, 16, 32, 64, 128) if cfg.gradient_accumulation_steps % w == 0]
    lines = [
        f"model: {model_cfg.n_layer} layers, {model_cfg.n_head} heads, {model_cfg.n_embd} dims, "
        f"block {model_cfg.block_size}, vocab {model_cfg.vocab_size}, activation {model_cfg.activation}",
        f"parameters: {n_all:,} ({n_all / 1e9:.3f}B); without position embeddings {n_no_pos:,}",
        f"FLOPs per token (training, 6N + attention): {fpt:.4g}",
        f"tokens per iteration: {tokens_per_iter:,} = batch_size {cfg.batch_size} x block_size "
        f"{cfg.block_size} x gradient_accumulation_steps {cfg.gradient_accumulation_steps} "
        "(the same at any world size)",
        f"world size {world_size}: {cfg.gradient_accumulation_steps // max(1, world_size)} micro-steps per rank "
        f"per iteration; world sizes that divide the accumulation steps: {divisors}",
        f"iterations: {cfg.max_iters:,}; total tokens: {cfg.max_iters * tokens_per_iter:,} "
        f"({cfg.max_iters * tokens_per_iter / 1e9:.2f}B); total FLOPs: {fpt * cfg.max_iters * tokens_per_iter:.3g}",
        f"memory per GPU {'(evaluation only)' if cfg.eval_only else 'under DDP'} "
        f"({'bf16/fp16 autocast' if low_precision else 'fp32'}, fp32 master weights):",
        f"  weights fp32           {weights / gib:8.2f} GiB (exact)",
        f"  gradients fp32         {grads / gib:8.2f} GiB (exact; DDP buckets share them)",
        f"  AdamW moments          {adam / gib:8.2f} GiB (exact)",
        f"  autocast weight copies {cast / gib:8.2f} GiB (exact)",
        f"  activations            {acts / gib:8.2f} GiB (estimate, micro-batch {cfg.batch_size} x {cfg.block_size})",
        f"  total                  {total / gib:8.2f} GiB (estimate; plus the CUDA context and allocator slack)",
    ]
    fits = total <= 0.9 * cfg.gpu_memory_gb * gib
    verdict = "fits" if fits else "does NOT fit"
    lines.append(
        f"{verdict} a {cfg.gpu_memory_gb:g} GiB GPU (keeping 10% headroom)"
        + ("" if fits else "; lower batch_size (raising gradient_accumulation_steps) or use bigger GPUs")
    )
    print("\n".join(lines))
    return total / gib
