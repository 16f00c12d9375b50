# A baby GPT on tiny Shakespeare, characters: nanoGPT's GPU settings (about 3 minutes on an A100).
# python data/shakespeare_char/prepare.py && python train.py config/train_shakespeare_char.py
out_dir = "out-shakespeare-char"
eval_interval = 250  # frequent: this model overfits
eval_iters = 200
log_interval = 10
always_save_checkpoint = False  # keep ckpt.pt only when val improves

wandb_log = False
wandb_project = "shakespeare-char"

dataset = "shakespeare_char"
gradient_accumulation_steps = 1
batch_size = 64
block_size = 256  # characters of context

n_layer = 6
n_head = 6
n_embd = 384
dropout = 0.2
activation = "gelu"

learning_rate = 1e-3  # a small model can take a higher rate
max_iters = 5000
lr_decay_iters = 5000  # usually equal to max_iters
min_lr = 1e-4  # learning_rate / 10
beta2 = 0.99  # a bit larger, since few tokens per iteration
warmup_iters = 100
