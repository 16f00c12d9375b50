"""
What a training run is: every setting of train.py with its default and meaning (the comment beside
each key is its --help text), and the checks every setting passes before anything is read or
written. Nothing here imports torch at import time: sweeps and reports read these settings without it.
"""

from training import rundir
from training.errors import UserError

DEFAULTS = dict(
    # I/O
    out_dir="out",  # checkpoints and the run's records (config.json, metrics.jsonl, summary.json, analysis.json)
    eval_interval=2000,  # iterations between evaluations (and checkpoints)
    log_interval=1,  # iterations between log lines (each one reads the loss back from the device)
    eval_iters=200,  # batches per split in an evaluation
    score_iters=[],  # iterations whose evaluation scores the whole validation split too (the end's always does)
    eval_only=False,  # evaluate once, print the losses and exit, writing nothing
    always_save_checkpoint=True,  # write ckpt.pt at every eval, not only when val improves
    init_from="scratch",  # 'scratch', 'resume', 'auto' (resume if out_dir has ckpt.pt), 'gpt2'..'gpt2-xl', a folder
    checkpoint=rundir.CKPT,  # the file in out_dir that resume and auto continue from; best.pt: from the best eval
    # wandb
    wandb_log=False,  # also log to wandb (WANDB_MODE=offline works without an account)
    wandb_project="activations",  # wandb project
    wandb_group="",  # wandb group (sweeps set their name)
    wandb_run_name="",  # default: the activation and seed
    # data
    dataset="openwebtext",  # a folder under data/, or a path to one
    gradient_accumulation_steps=5 * 8,  # micro-batches per iteration, for the global batch; split across DDP ranks
    batch_size=12,  # micro-batch per rank
    block_size=1024,  # tokens of context
    # model
    n_layer=12,  # transformer blocks
    n_head=12,  # attention heads; must divide n_embd
    n_embd=768,  # width of the residual stream
    dropout=0.0,  # dropout probability (0 for pretraining, ~0.1-0.2 for small data)
    bias=False,  # biases in Linear and LayerNorm layers (GPT-2 has them)
    activation="",  # a name from model.ACTIVATIONS; '' means the weights' own (a checkpoint's, a GPT-2's), else gelu
    mup_base_width=0,  # µP: the width the learning rate was tuned at (0: the standard parametrization; see model.py)
    mup_base_head_dim=0,  # µP: the head size at the base width (0: this run's; widths that grow by heads)
    mup_input_mult=1.0,  # µP's α_in, multiplying the embeddings
    mup_output_mult=1.0,  # µP's α_out, multiplying the logits (beside 1/m)
    mup_attn_mult=1.0,  # µP's α_attn, multiplying the attention scale sqrt(d_base_head) / d_head
    # AdamW
    learning_rate=6e-4,  # peak learning rate (under µP, the base width's: hidden matrices take base/width of it)
    learning_rate_from="",  # where learning_rate comes from (a sweep and its commit): the plan and records say it
    max_iters=600000,  # iterations in all
    weight_decay=1e-1,  # AdamW weight decay, on matrices only
    beta1=0.9,  # AdamW beta1
    beta2=0.95,  # AdamW beta2
    grad_clip=1.0,  # clip the gradient norm to this; 0 disables clipping
    decay_lr=True,  # warmup then cosine decay; False keeps learning_rate throughout
    warmup_iters=2000,  # linear warmup from ~0 to learning_rate
    lr_decay_iters=600000,  # the cosine reaches min_lr here (usually max_iters)
    min_lr=6e-5,  # learning rate after the decay (usually learning_rate / 10)
    # system
    device="auto",  # 'cuda', 'cpu', 'mps', 'cuda:1', or auto (cuda, else mps, else cpu)
    dtype="auto",  # 'float32', 'bfloat16', 'float16', or auto (bf16 where supported)
    compile=True,  # torch.compile the model (falls back to eager where it cannot)
    compile_mode="default",  # torch.compile's mode: 'default', 'reduce-overhead' (CUDA graphs), 'max-autotune'
    fused_loss="auto",  # loss in chunks, no full logits: 'liger' (CUDA), 'torch' (>=2.13), 'off'; auto: liger if there
    sdpa_backend="auto",  # SDPA kernel first: cudnn, flash, efficient, math, torch (its order); auto: cudnn on Hopper+
    matmul_precision="high",  # torch.set_float32_matmul_precision: 'high' allows TF32 on CUDA; exact fp32 on CPU
    backend="auto",  # DDP: 'nccl' on CUDA, 'gloo' on CPU
    threads=0,  # CPU threads per process; 0 keeps torch's default
    fsdp=False,  # under torchrun, shard weights, gradients and AdamW state over the ranks (FSDP2) instead of DDP
    activation_checkpointing=False,  # recompute each block's activations in backward: less memory, ~1/3 more compute
    seed=1337,  # fixes the initial weights, the training batches and the dropout masks
    nonfinite="stop",  # on a non-finite loss or gradient: 'stop', or 'skip' the update
    # planning
    dry_run=False,  # print the plan (parameters, tokens, memory per GPU) and exit
    gpu_memory_gb=80.0,  # the GPU memory the plan checks the run against
    world_size=0,  # the GPUs the plan is for; 0: the run's own (torchrun's WORLD_SIZE, else 1)
    gpu="auto",  # the GPU the plan estimates time on (a name in tools/plan.py's table); auto: this machine's, else H100
)
INITS = ("scratch", "resume", "auto")  # besides a GPT-2 to start from (training/hf.py)
DEVICE_CHOICES = {"dtype": ("auto", "float32", "bfloat16", "float16"),
                  "matmul_precision": ("highest", "high", "medium")}


def activation(cfg, trained_with="gelu"):
    """The activation a run's MLPs compute: the one the settings name, else the one its weights were
    trained with (a checkpoint's, a GPT-2's), else, for new weights, gelu. The one place '' gets a name."""
    return cfg.activation or trained_with


def validate_device(cfg):
    """dtype and matmul_precision, checked before any device is looked at (sample.py has them too)."""
    for key, valid in DEVICE_CHOICES.items():
        if getattr(cfg, key) not in valid:
            raise UserError(f"{key}={getattr(cfg, key)!r} is not valid; choose one of {', '.join(valid)}")


def validate(cfg):
    """The settings' own checks, before anything is read or written. The choices whose valid values
    other modules own (the activation, init_from, the GPU of a plan) are checked there:
    training/loop.py's check() runs them all."""
    validate_device(cfg)
    choices = {"backend": ("auto", "nccl", "gloo"), "nonfinite": ("stop", "skip"),
               "checkpoint": (rundir.CKPT, rundir.BEST), "compile_mode": ("default", "reduce-overhead", "max-autotune"),
               "fused_loss": ("auto", "liger", "torch", "off"),
               "sdpa_backend": ("auto", "torch", "cudnn", "flash", "efficient", "math")}
    for key, valid in choices.items():
        if getattr(cfg, key) not in valid:
            raise UserError(f"{key}={getattr(cfg, key)!r} is not valid; choose one of {', '.join(valid)}")
    for key in ("batch_size", "block_size", "gradient_accumulation_steps", "eval_interval", "eval_iters",
                "log_interval", "n_layer", "n_head", "n_embd"):
        if getattr(cfg, key) <= 0:
            raise UserError(f"{key}={getattr(cfg, key)} must be a positive integer")
    for key in ("max_iters", "seed", "threads", "warmup_iters", "lr_decay_iters", "min_lr", "weight_decay",
                "grad_clip", "mup_base_width", "mup_base_head_dim"):
        if getattr(cfg, key) < 0:
            raise UserError(f"{key}={getattr(cfg, key)} must be >= 0")
    for key, (low, high) in dict(dropout=(0, 1), beta1=(0, 1), beta2=(0, 1)).items():
        if not low <= getattr(cfg, key) < high:
            raise UserError(f"{key}={getattr(cfg, key)} must be in [{low}, {high})")
    for key in ("learning_rate", "gpu_memory_gb"):
        if getattr(cfg, key) <= 0:
            raise UserError(f"{key}={getattr(cfg, key)} must be > 0")
    for key in ("mup_input_mult", "mup_output_mult", "mup_attn_mult"):
        if not getattr(cfg, key) > 0:
            raise UserError(f"{key}={getattr(cfg, key)} must be > 0")
        if getattr(cfg, key) != 1 and not cfg.mup_base_width:
            raise UserError(f"{key}={getattr(cfg, key)} is a µP multiplier; set mup_base_width too, or leave it 1")
    if cfg.mup_base_head_dim and not cfg.mup_base_width:
        raise UserError(f"mup_base_head_dim={cfg.mup_base_head_dim} is µP's; set mup_base_width too, or leave it 0")
    if cfg.mup_base_width and cfg.init_from not in INITS:
        raise UserError(f"mup_base_width={cfg.mup_base_width} trains from µP's initialisation, but init_from="
                        f"{cfg.init_from!r} starts from GPT-2's weights, trained without µP; leave mup_base_width=0")
    odd = [i for i in cfg.score_iters if not (isinstance(i, int) and i > 0 and i % cfg.eval_interval == 0)]
    if odd:
        raise UserError(f"score_iters={cfg.score_iters!r}: {odd[0]!r} is not an evaluation's iteration; give "
                        f"positive multiples of eval_interval={cfg.eval_interval}")
    if cfg.seed >= 2**63:
        raise UserError(f"seed={cfg.seed} is too large; use a seed below 2**63")
    if cfg.n_embd % cfg.n_head:
        raise UserError(f"n_embd={cfg.n_embd} is not divisible by n_head={cfg.n_head}; each head gets "
                        "n_embd / n_head dimensions")
