# A tiny GPT trained from scratch on tiny Shakespeare in GPT-2's BPE, on a laptop CPU: the model and
# optimizer of train_shakespeare_char_cpu.py, on BPE tokens, for a shorter run.
# python data/shakespeare/prepare.py && python train.py config/train_shakespeare_bpe.py
#
# GPT-2's 50,257-token vocabulary (padded to 50,304) makes the embedding, tied with the output layer,
# 6.4M of the model's 7.2M parameters, and the output layer most of the compute; so the model stays
# small and the run short. 300 iterations of 12 x 64 = 768 tokens see 230k tokens, about 0.8 of an
# epoch of the 301,966 training tokens (a block of 64 BPE tokens is about 250 characters).
# Cost, measured on a 2-core x86-64 CPU: 8 CPU-minutes, about 0.5 s per iteration on free cores, so
# 3-4 minutes alone (9.5 minutes while other jobs shared the cores). Val loss 10.82 -> 5.54 (nats per
# BPE token; a char-level loss is per character, so the two do not compare).
exec(open(__file__.replace("train_shakespeare_bpe.py", "train_shakespeare_char_cpu.py")).read())

out_dir = "out-shakespeare-bpe-cpu"
eval_interval = 100
eval_iters = 10
always_save_checkpoint = False
dataset = "shakespeare"
max_iters = 300
lr_decay_iters = 300
warmup_iters = 30
