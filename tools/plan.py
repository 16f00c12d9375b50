"""
What a run will cost, before it starts: `python train.py CONFIG --dry_run=True`.

The model is built on the meta device (no memory, no data read), so even GPT-2 XL is planned
on a laptop in a second. Parameter counts and FLOPs are exact; activation memory is an estimate.
"""

import math
from types import SimpleNamespace

import torch

from model import ACTIVATIONS, GPT, mlp_hidden
from training.batches import tokens_per_iter
from training.errors import UserError
from training.loop import fused_loss_kernel

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
    """Estimated bytes of activations kept for backward, per token, the loss aside (loss_bytes).

    Per layer, from the tensors autograd saves: the fp32 residual stream entering both
    LayerNorms (2 x 4h), the low-precision inputs of c_attn, attention's q, k, v and output,
    and c_proj (2h each, 6 tensors: 12h), plus the MLP's c_fc input (2h) and its c_fc output
    and activation output (2 x fc_width). Attention through SDPA stores no T x T scores.
    Final layer: ln_f and lm_head inputs. With activation checkpointing each layer keeps only its
    fp32 input (4h), and one layer's activations exist at a time, while it is recomputed.
    """
    h, L = model_cfg.n_embd, model_cfg.n_layer
    gated = ACTIVATIONS[model_cfg.activation].gated
    fc_width = mlp_hidden(h, gated, model_cfg.bias) * (2 if gated else 1)
    per_layer = 8 * h + (6 + 1) * dtype_bytes * h + 2 * dtype_bytes * fc_width
    if cfg.dropout > 0:
        per_layer += 2 * h  # one byte per element for each of the two residual dropout masks
    final = 4 * h + dtype_bytes * h
    return (L * 4 * h + per_layer if checkpointed else L * per_layer) + final


def loss_bytes(model_cfg, dtype_bytes, tokens, compiled, fused):
    """Bytes of the loss at its peak, the start of backward, for a micro-batch of `tokens` tokens.

    Eager, cross-entropy keeps its log-softmax output in fp32, and its backward holds that, the
    gradient arriving for it and the gradient it makes, all (tokens x vocab) in fp32: 12 bytes per
    logit, whatever the autocast dtype. Compiled, the loss is fused into the logits' own dtype: the
    logits kept, a gradient and one more buffer of their size, 3 x dtype_bytes per logit. A fused
    linear cross-entropy (Liger's and torch's chunk alike) holds one chunk of rows, sized so that its
    logits are about as large as the micro-batch's hidden states (in fp32, with two gradients), and
    output-layer-sized buffers: the weight's gradient, its low-precision copy, and accumulators
    (16 bytes per weight, the most measured on the CPU), and the gradient of the hidden states.
    Each term is checked against a step's measured peak on the CPU (tests/test_plan.py)."""
    V, h = model_cfg.vocab_size, model_cfg.n_embd
    if fused:
        rows = min(tokens, 1 << (math.ceil(tokens / math.ceil(V / h)) - 1).bit_length())
        return 12 * rows * V + 16 * V * h + 4 * tokens * h
    return (3 * dtype_bytes if compiled else 12) * V * tokens


# How a run may spread over its GPUs, cheapest first: sharding costs communication (gathering each
# block's weights in forward and backward, which NVLink mostly hides), recomputing activations
# about a third more compute. (label, flags, fsdp, activation checkpointing)
STRATEGIES = [
    ("DDP", "", False, False),
    ("FSDP", "--fsdp=True", True, False),
    ("DDP+ckpt", "--activation_checkpointing=True", False, True),
    ("FSDP+ckpt", "--fsdp=True --activation_checkpointing=True", True, True),
]


def memory(cfg, model, world_size, fsdp, checkpointed, dtype_bytes, fused):
    """Bytes per GPU of each part of a training run's memory under a strategy, at the peak: all
    the activations kept and the loss's backward starting (weights, gradients and AdamW state are
    counted whole, an upper bound for the gradients, which fill up during backward)."""
    n, L = model.get_num_params(non_embedding=False), model.config.n_layer
    per_block = sum(p.numel() for p in model.transformer.h[0].parameters())
    micro_steps = cfg.gradient_accumulation_steps // world_size
    tokens = cfg.batch_size * cfg.block_size
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
        "activations": activation_bytes(cfg, model.config, dtype_bytes, checkpointed) * tokens,
        "loss": loss_bytes(model.config, dtype_bytes, tokens, cfg.compile, fused),
    }


# The one MFU measured on a GPU so far: GPT-2 124M, batch 12 x 1024, compiled bf16, on one H200
# (bench.py at 00a7ce7; docs/gpus.md): 39.5% of the datasheet peak. The time estimate
# assumes it for every model and GPU: larger models usually reach more, small micro-batches less.
ASSUMED_MFU = 0.395


def gpu_kind(cfg):
    """The GPU the time estimate is for: the gpu setting, else this machine's (if known), else H100."""
    if cfg.gpu != "auto":
        if cfg.gpu not in DATASHEET_PEAK_FLOPS:
            raise UserError(f"gpu={cfg.gpu!r} is not valid; choose auto or one of {', '.join(DATASHEET_PEAK_FLOPS)}")
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
    tokens = tokens_per_iter(cfg)
    gpu = gpu_kind(cfg)
    seconds = model.flops_per_token() * tokens / (ASSUMED_MFU * DATASHEET_PEAK_FLOPS[gpu] * world_size)
    # the fused loss the run would use on a GPU of this machine (none planned where liger-kernel is missing)
    fused = fused_loss_kernel(cfg.fused_loss, "cuda", say=lambda _: None)
    columns = {label: memory(cfg, model, world_size, fsdp, ckpt, dtype_bytes, fused)
               for label, _, fsdp, ckpt in STRATEGIES}
    totals = {label: sum(parts.values()) for label, parts in columns.items()}
    budget = 0.9 * cfg.gpu_memory_gb * 2**30
    ours = next(label for label, _, fsdp, ckpt in STRATEGIES
                if (fsdp, ckpt) == (cfg.fsdp, cfg.activation_checkpointing))
    cheapest = next(((label, flags) for label, flags, _, _ in STRATEGIES if totals[label] <= budget), None)
    # The same tokens per iteration in fewer, larger micro-steps run faster (larger matrix products,
    # fewer launches): the largest micro-batch that fits with this run's strategy, if larger.
    per_rank = cfg.gradient_accumulation_steps // world_size
    largest = None
    for k in (k for k in range(per_rank, 1, -1) if per_rank % k == 0):
        wider = SimpleNamespace(**{**vars(cfg), "batch_size": cfg.batch_size * k,
                                   "gradient_accumulation_steps": cfg.gradient_accumulation_steps // k})
        if sum(memory(wider, model, world_size, cfg.fsdp, cfg.activation_checkpointing, dtype_bytes,
                      fused).values()) <= budget:
            largest = (wider.batch_size, wider.gradient_accumulation_steps)
            break
    # the end of an FSDP run: rank 0 gathers an unsharded fp32 copy (after freeing AdamW's moments and
    # the gradients) for the analysis and the whole-split score, an evaluation batch's logits beside it
    fsdp_end = 4 * n_all / world_size + 4 * n_all + (dtype_bytes + 4) * model_cfg.vocab_size * cfg.batch_size * \
        cfg.block_size
    # evaluation only: no gradients or optimizer; of the activations only the logits stay at once
    eval_only = (4 + (dtype_bytes if low_precision else 0)) * n_all + \
        (dtype_bytes + 4) * model_cfg.vocab_size * cfg.batch_size * cfg.block_size
    return SimpleNamespace(model=model, fused=fused, n_all=n_all, n_no_pos=model.get_num_params(),
                           fpt=model.flops_per_token(), tokens=tokens, world_size=world_size,
                           low_precision=low_precision, columns=columns, totals=totals, budget=budget, ours=ours,
                           cheapest=cheapest, largest=largest, fsdp_end=fsdp_end, eval_only=eval_only, gpu=gpu,
                           seconds_per_iter=seconds)


def plan(cfg, model_cfg, world_size):
    """Print the plan of a run; return its estimate (SimpleNamespace, sizes in bytes)."""
    # not at the top: evidence brings scipy, which only the dry run needs, not every training run
    from experiment.evidence import duration

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
    loss = f"fused loss ({e.fused})" if e.fused else f"plain loss, {'compiled' if cfg.compile else 'eager'}"
    lines += [
        f"memory per GPU at world size {e.world_size} ({'bf16/fp16 autocast' if e.low_precision else 'fp32'}, fp32 "
        "master weights), in GiB, at the peak (the loss's backward starting); weights, gradients and AdamW state "
        f"exact, the rest estimated (micro-batch {cfg.batch_size} x {cfg.block_size}, {loss}):",
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
    if e.largest:
        lines.append(f"the largest micro-batch that fits ({e.ours}): --batch_size={e.largest[0]} "
                     f"--gradient_accumulation_steps={e.largest[1]} (the same {e.tokens:,} tokens per iteration in "
                     "fewer, larger micro-steps: faster)")
    if e.cheapest is None:
        lines.append("nothing fits: lower batch_size (raising gradient_accumulation_steps), or use more or bigger GPUs")
    elif e.cheapest[0] != e.ours:
        lines.append(f"the cheapest that fits: {e.cheapest[0]}" + (f" ({e.cheapest[1]})" if e.cheapest[1] else ""))
    print("\n".join(lines))
    return e
