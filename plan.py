"""
What a run will cost, before it starts: `python train.py CONFIG --dry_run=True`.

The model is built on the meta device (no memory, no data read), so even GPT-2 XL is planned
on a laptop in a second. Parameter counts and FLOPs are exact; activation memory is an estimate.
"""

from types import SimpleNamespace

import torch

import runtime
from errors import UserError
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


def datasheet_peak_flops(device):
    """Datasheet bf16 peak of a known CUDA GPU, else None."""
    if torch.device(device).type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in DATASHEET_PEAK_FLOPS.items() if key in name), None)


def activation_bytes(cfg, model_cfg, dtype_bytes, checkpointed=False):
    """Estimated bytes of activations kept for backward, per token.

    Per layer, from the tensors autograd saves: the fp32 residual stream entering both
    LayerNorms (2 x 4h), the low-precision inputs of c_attn, attention's q, k, v and output,
    and c_proj (2h each, 6 tensors: 12h), plus the MLP's c_fc input (2h) and its c_fc output
    and activation output (2 x fc_width). Attention through SDPA stores no T x T scores.
    Final layer: ln_f and lm_head inputs, and logits kept for the loss (low precision + fp32).
    With activation checkpointing each layer keeps only its fp32 input (4h), and one layer's
    activations exist at a time, while it is recomputed.
    """
    h, L, V = model_cfg.n_embd, model_cfg.n_layer, model_cfg.vocab_size
    gated = ACTIVATIONS[model_cfg.activation].gated
    fc_width = mlp_hidden(h, gated, model_cfg.bias) * (2 if gated else 1)
    per_layer = 8 * h + (6 + 1) * dtype_bytes * h + 2 * dtype_bytes * fc_width
    if cfg.dropout > 0:
        per_layer += 2 * h  # one byte per element for each of the two residual dropout masks
    final = 4 * h + dtype_bytes * h + (dtype_bytes + 4) * V
    return (L * 4 * h + per_layer if checkpointed else L * per_layer) + final


# How a run may spread over its GPUs, cheapest first: sharding costs communication (gathering each
# block's weights in forward and backward, which NVLink mostly hides), recomputing activations
# about a third more compute. (label, flags, fsdp, activation checkpointing)
STRATEGIES = [
    ("DDP", "", False, False),
    ("FSDP", "--fsdp=True", True, False),
    ("DDP+ckpt", "--activation_checkpointing=True", False, True),
    ("FSDP+ckpt", "--fsdp=True --activation_checkpointing=True", True, True),
]


def memory(cfg, model, world_size, fsdp, checkpointed, dtype_bytes):
    """Bytes per GPU of each part of a training run's memory under a strategy."""
    n, L = model.get_num_params(non_embedding=False), model.config.n_layer
    per_block = sum(p.numel() for p in model.transformer.h[0].parameters())
    micro_steps = cfg.gradient_accumulation_steps // world_size
    shards = world_size if fsdp else 1
    low = dtype_bytes < 4
    if fsdp:  # the root's weights and two blocks' (one computing, one prefetched) gathered at a time
        gathered = dtype_bytes * (n - L * per_block + 2 * per_block)
    else:  # autocast keeps a low-precision copy of each weight for the forward pass
        gathered = dtype_bytes * n if low else 0
    return {
        "weights fp32": 4 * n / shards,
        # FSDP sums the gradients of the micro-steps that skip the reduce-scatter unsharded, in fp32
        "gradients fp32": 4 * n / shards + (4 * n if fsdp and micro_steps > 1 else 0),
        "AdamW moments": 8 * n / shards,
        "low-precision weights": gathered,
        "activations": activation_bytes(cfg, model.config, dtype_bytes, checkpointed) * cfg.batch_size * cfg.block_size,
    }


# The one MFU measured on a GPU so far: GPT-2 124M, batch 12 x 1024, compiled bf16, on one H200
# (bench.py at 00a7ce7; README, Running on GPUs): 39.5% of the datasheet peak. The time estimate
# assumes it for every model and GPU: larger models usually reach more, small micro-batches less.
ASSUMED_MFU = 0.395


def gpu_kind(cfg):
    """The GPU the time estimate is for: the gpu setting, else this machine's (if known), else H100."""
    if cfg.gpu != "auto":
        return cfg.gpu
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        return next((key for key in DATASHEET_PEAK_FLOPS if key in name), "H100")
    return "H100"


def estimate(cfg, model_cfg, world_size):
    """What a run will cost, from its settings and model config: parameters, FLOPs, memory per GPU
    under each strategy (bytes), and time at ASSUMED_MFU on world_size GPUs of gpu_kind."""
    world_size = cfg.world_size or world_size
    if cfg.gradient_accumulation_steps % world_size:
        raise UserError(f"world_size={world_size} does not divide gradient_accumulation_steps="
                        f"{cfg.gradient_accumulation_steps}; plan for a world size that does")
    with torch.device("meta"):
        model = GPT(model_cfg)
    low_precision = cfg.dtype in ("bfloat16", "float16", "auto")
    dtype_bytes = 2 if low_precision else 4
    n_all = model.get_num_params(non_embedding=False)
    tokens = runtime.tokens_per_iter(cfg)
    gpu = gpu_kind(cfg)
    seconds = model.flops_per_token() * tokens / (ASSUMED_MFU * DATASHEET_PEAK_FLOPS[gpu] * world_size)
    columns = {label: memory(cfg, model, world_size, fsdp, ckpt, dtype_bytes) for label, _, fsdp, ckpt in STRATEGIES}
    totals = {label: sum(parts.values()) for label, parts in columns.items()}
    budget = 0.9 * cfg.gpu_memory_gb * 2**30
    ours = next(label for label, _, fsdp, ckpt in STRATEGIES
                if (fsdp, ckpt) == (cfg.fsdp, cfg.activation_checkpointing))
    cheapest = next(((label, flags) for label, flags, _, _ in STRATEGIES if totals[label] <= budget), None)
    # the end of an FSDP run: rank 0 gathers an unsharded fp32 copy (after freeing AdamW's moments and
    # the gradients) for the analysis and the whole-split score, an evaluation batch's logits beside it
    fsdp_end = 4 * n_all / world_size + 4 * n_all + (dtype_bytes + 4) * model_cfg.vocab_size * cfg.batch_size * \
        cfg.block_size
    # evaluation only: no gradients or optimizer; of the activations only the logits stay at once
    eval_only = (4 + (dtype_bytes if low_precision else 0)) * n_all + \
        (dtype_bytes + 4) * model_cfg.vocab_size * cfg.batch_size * cfg.block_size
    return SimpleNamespace(model=model, n_all=n_all, n_no_pos=model.get_num_params(), fpt=model.flops_per_token(),
                           tokens=tokens, world_size=world_size, low_precision=low_precision, columns=columns,
                           totals=totals, budget=budget, ours=ours, cheapest=cheapest, fsdp_end=fsdp_end,
                           eval_only=eval_only, gpu=gpu, seconds_per_iter=seconds)


def plan(cfg, model_cfg, world_size):
    """Print the plan of a run; return its estimate (SimpleNamespace, sizes in bytes)."""
    from evidence import duration  # evidence brings scipy, which only the dry run needs, not every training run

    e = estimate(cfg, model_cfg, world_size)
    gib = 2**30
    divisors = [w for w in (1, 2, 4, 8, 16, 32, 64, 128) if cfg.gradient_accumulation_steps % w == 0]
    lines = [
        f"model: {model_cfg.n_layer} layers, {model_cfg.n_head} heads, {model_cfg.n_embd} dims, "
        f"block {model_cfg.block_size}, vocab {model_cfg.vocab_size}, activation {model_cfg.activation}",
        f"parameters: {e.n_all:,} ({e.n_all / 1e9:.3f}B); without position embeddings {e.n_no_pos:,}",
        f"FLOPs per token (training, 6N + attention): {e.fpt:.4g}",
        f"tokens per iteration: {e.tokens:,} = batch_size {cfg.batch_size} x block_size "
        f"{cfg.block_size} x gradient_accumulation_steps {cfg.gradient_accumulation_steps} "
        "(the same at any world size)",
        f"world size {e.world_size}: {cfg.gradient_accumulation_steps // e.world_size} micro-steps per rank "
        f"per iteration; world sizes that divide the accumulation steps: {divisors}",
        f"iterations: {cfg.max_iters:,}; total tokens: {cfg.max_iters * e.tokens:,} "
        f"({cfg.max_iters * e.tokens / 1e9:.2f}B); total FLOPs: {e.fpt * cfg.max_iters * e.tokens:.3g}",
    ]
    if cfg.eval_only:
        lines.append(f"memory per GPU, evaluation only: {e.eval_only / gib:.2f} GiB (estimate); "
                     f"{'fits' if e.eval_only <= e.budget else 'does NOT fit'} a {cfg.gpu_memory_gb:g} GiB GPU")
        print("\n".join(lines))
        return e
    lr = f"learning rate: peak {cfg.learning_rate:g}"
    if model_cfg.mup_base_width:
        lr += (f", µP on base width {model_cfg.mup_base_width}: the hidden matrices at "
               f"{cfg.learning_rate / model_cfg.width_mult:.3g} (x{1 / model_cfg.width_mult:.3g} at width "
               f"{model_cfg.n_embd})")
    lines.append(lr + f"; from: {cfg.learning_rate_from or 'not said (learning_rate_from)'}")
    lines.append(
        f"time, estimated (not measured): {e.seconds_per_iter:.3g} s per iteration on {e.world_size} x {e.gpu} "
        f"({DATASHEET_PEAK_FLOPS[e.gpu] / 1e12:,.0f} TFLOP/s bf16 each) at an assumed {100 * ASSUMED_MFU:.1f}% MFU, "
        f"the one MFU measured here (GPT-2 124M on one H200); {cfg.max_iters:,} iterations: "
        f"{duration(e.seconds_per_iter * cfg.max_iters)}")
    lines += [
        f"memory per GPU at world size {e.world_size} ({'bf16/fp16 autocast' if e.low_precision else 'fp32'}, fp32 "
        "master weights), in GiB; weights, gradients and AdamW state exact, gathered weights and activations "
        f"estimated (micro-batch {cfg.batch_size} x {cfg.block_size}):",
        f"  {'':<24}" + "".join(f"{label:>11}" for label in e.columns),
    ]
    for part in next(iter(e.columns.values())):
        lines.append(f"  {part:<24}" + "".join(f"{parts[part] / gib:>11.2f}" for parts in e.columns.values()))
    lines.append(f"  {'total':<24}" + "".join(f"{t / gib:>11.2f}" for t in e.totals.values()))
    lines.append(f"  {f'fits {cfg.gpu_memory_gb:g} GiB (90%)':<24}"
                 + "".join(f"{'yes' if t <= e.budget else 'no':>11}" for t in e.totals.values()))
    lines.append(f"this run ({e.ours}): {e.totals[e.ours] / gib:.2f} GiB per GPU, "
                 f"{'fits' if e.totals[e.ours] <= e.budget else 'does NOT fit'} a {cfg.gpu_memory_gb:g} GiB GPU "
                 "(keeping 10% headroom; plus the CUDA context and allocator slack)")
    if cfg.fsdp:
        lines.append(f"at the end, rank 0 holds an unsharded fp32 copy for the analysis and the whole-split score: "
                     f"{e.fsdp_end / gib:.2f} GiB ({'fits' if e.fsdp_end <= e.budget else 'does NOT fit'})")
    if e.cheapest is None:
        lines.append("nothing fits: lower batch_size (raising gradient_accumulation_steps), or use more or bigger GPUs")
    elif e.cheapest[0] != e.ours:
        lines.append(f"the cheapest that fits: {e.cheapest[0]}" + (f" ({e.cheapest[1]})" if e.cheapest[1] else ""))
    print("\n".join(lines))
    return e
