# GPT-2 XL (48 layers, 25 heads, 1600 dims, ~1.56B parameters) on OpenWebText, MLP with GELU (exact).
# gpt2_xl_relu.py and gpt2_xl_none.py are this file with another activation.
#
# Which GPUs: `python train.py config/gpt2_xl_gelu.py --dry_run=True --world_size=8 --gpu_memory_gb=40`
# prints the memory per GPU of DDP, FSDP and either with activation checkpointing, and the cheapest
# that fits. For this config on 8 GPUs (estimates: weights, gradients and AdamW state are exact,
# activations of the 8 x 1024 micro-batch estimated):
#   8 x 80 GB: DDP, 50.7 GiB per GPU:
#     torchrun --standalone --nproc_per_node=8 train.py config/gpt2_xl_gelu.py
#   8 x 40 GB (A100 40GB, L40S 48GB): FSDP, 33.6 GiB per GPU:
#     torchrun --standalone --nproc_per_node=8 train.py config/gpt2_xl_gelu.py --fsdp=True
#   8 x 24 GB (RTX 4090, A10G, L4): FSDP with activation checkpointing, 14.2 GiB per GPU:
#     torchrun --standalone --nproc_per_node=8 train.py config/gpt2_xl_gelu.py --fsdp=True \
#              --activation_checkpointing=True
# The tokens per iteration, and so the run, are the same in all three.
# Data: python data/openwebtext/prepare.py
#
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
