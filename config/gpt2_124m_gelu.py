# GPT-2 small (12 layers, 12 heads, 768 dims, ~124M parameters) on OpenWebText, MLP with GELU (exact).
# gpt2_124m_relu.py and gpt2_124m_none.py are this file with another activation.
#
# Needs: one GPU with 40 GB or more, or one node of 8 (each then does 5 of the 40 micro-steps).
# `python train.py config/gpt2_124m_gelu.py --dry_run=True` prints the plan.
# Data: python data/openwebtext/prepare.py
#
# One GPU:       python train.py config/gpt2_124m_gelu.py
# One node:      torchrun --standalone --nproc_per_node=8 train.py config/gpt2_124m_gelu.py
# Several nodes: torchrun --nnodes=N --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 \
#                         --rdzv_id=gpt2-124m-gelu train.py config/gpt2_124m_gelu.py
#
# 12 x 1024 x 40 = 491,520 tokens per iteration; 20,000 iterations = 9.8B tokens (nanoGPT's
# full run is 600,000). At an assumed 40% MFU on 8 H100s that is about 0.12 s per iteration,
# under an hour.
out_dir = "out-gpt2-124m-gelu"
wandb_log = True
wandb_project = "activations-gpt2-124m"
wandb_group = "gpt2-124m"

dataset = "openwebtext"
batch_size = 12
block_size = 1024
gradient_accumulation_steps = 40

n_layer = 12
n_head = 12
n_embd = 768
dropout = 0.0
bias = False
activation = "gelu"

learning_rate = 6e-4
min_lr = 6e-5
warmup_iters = 700
max_iters = 20000
lr_decay_iters = 20000
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0

eval_interval = 1000
eval_iters = 200
log_interval = 10
dtype = "bfloat16"
compile = True
gpu_memory_gb = 80.0
