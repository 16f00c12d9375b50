# Fine-tune OpenAI's GPT-2 XL (1.56B parameters) on tiny Shakespeare in GPT-2's BPE.
#
#   python data/shakespeare/prepare.py && python train.py config/finetune_shakespeare.py
#   python sample.py --out_dir=out-shakespeare --start="ROMEO:"
#
# Needs one GPU with 40 GB or more (A100 40GB, H100): the plan is ~29 GiB, of which fp32 weights,
# gradients and AdamW moments are 23 GiB and the activations of one 1024-token sequence ~3 GiB (an
# estimate). With a smaller GPU, or on a CPU with patience, use --init_from=gpt2 (124M, ~3 GiB).
# Surgery: --activation=relu fine-tunes the same weights with ReLU MLPs (see docs/gpt2.md).
out_dir = "out-shakespeare"
init_from = "gpt2-xl"
dataset = "shakespeare"
wandb_log = False

eval_interval = 5
eval_iters = 40
log_interval = 1
always_save_checkpoint = False  # keep ckpt.pt only when val improves: a short fine-tune soon overfits

# 1 x 1024 x 32 = 32,768 tokens per iteration; the 301,966 training tokens are an epoch every ~9
# iterations, so 20 iterations see the text about twice.
batch_size = 1
block_size = 1024
gradient_accumulation_steps = 32
max_iters = 20

# A small constant rate: the weights are already good and should move little.
learning_rate = 3e-5
decay_lr = False
