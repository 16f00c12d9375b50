# GPT-2 XL (48 layers, 25 heads, 1600 dims, ~1.56B parameters) on OpenWebText, MLP with GELU (exact).
# gpt2_xl_relu.py and gpt2_xl_none.py are this file with another activation.
#
# Needs: one node of 8 GPUs with 80 GB each (H100 or A100 80GB). Plain DDP keeps ~23 GiB of
# weights, gradients and AdamW state on every GPU, plus ~25 GiB (estimated) of activations for
# micro-batch 8;
# `python train.py config/gpt2_xl_gelu.py --dry_run=True` prints the full plan.
# Data: python data/openwebtext/prepare.py  (~17 GB of tokens on disk)
#
# One node:      torchrun --standalone --nproc_per_node=8 train.py config/gpt2_xl_gelu.py
# Several nodes: on each of N nodes (gradient_accumulation_steps must divide by N*8), run
#   torchrun --nnodes=N --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 \
#            --rdzv_id=gpt2-xl-gelu train.py config/gpt2_xl_gelu.py
#
# 8 x 1024 x 64 = 524,288 tokens per iteration at any world size; 60,000 iterations = 31.5B tokens
# (about 20 tokens per parameter). At an assumed 40% MFU on 8 H100s that is about 1.6 s per
# iteration, a little over a day.
out_dir = "out-gpt2-xl-gelu"
wandb_log = True
wandb_project = "activations-gpt2-xl"
wandb_group = "gpt2-xl"

dataset = "openwebtext"
batch_size = 8
block_size = 1024
gradient_accumulation_steps = 64

n_layer = 48
n_head = 25
n_embd = 1600
dropout = 0.0
bias = False
activation = "gelu"

# GPT-3's schedule for its 1.3B model: peak 2e-4, warmup over ~375M tokens, cosine to 10%.
learning_rate = 2e-4
min_lr = 2e-5
warmup_iters = 700
max_iters = 60000
lr_decay_iters = 60000
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0

eval_interval = 1000
eval_iters = 100
log_interval = 10
dtype = "bfloat16"
compile = True
gpu_memory_gb = 80.0
