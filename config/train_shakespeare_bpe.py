# A tiny GPT trained from scratch on tiny Shakespeare in GPT-2's BPE, on a laptop CPU.
# python data/shakespeare/prepare.py && python train.py config/train_shakespeare_bpe.py
#
# GPT-2's 50,257-token vocabulary (padded to 50,304) makes the embedding, tied with the output layer,
# 6.4M of the model's 7.2M parameters, and the output layer most of the compute; so the model stays
# small and the run short. 300 iterations of 12 x 64 = 768 tokens see 230k tokens, about 0.8 of an
# epoch of the 301,966 training tokens.
# Cost, measured on a 2-core x86-64 CPU: 8 CPU-minutes, about 0.5 s per iteration on free cores, so
# 3-4 minutes alone (9.5 minutes while other jobs shared the cores). Val loss 10.82 -> 5.54 (nats per
# BPE token; a char-level loss is per character, so the two do not compare).
out_dir = "out-shakespeare-bpe-cpu"
eval_interval = 100
eval_iters = 10
log_interval = 10
always_save_checkpoint = False

dataset = "shakespeare"
gradient_accumulation_steps = 1
batch_size = 12
block_size = 64  # BPE tokens of context, about 250 characters

n_layer = 4
n_head = 4
n_embd = 128
dropout = 0.0
activation = "gelu"

learning_rate = 1e-3
max_iters = 300
lr_decay_iters = 300
min_lr = 1e-4
beta2 = 0.99
warmup_iters = 30

device = "cpu"
compile = False
