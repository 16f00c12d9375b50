# Evaluate OpenAI's gpt2 (124M parameters) on OpenWebText: no training, one evaluation of the
# train and val splits. nanoGPT's README reports val loss 3.12 for this checkpoint.
#
#   python data/openwebtext/prepare.py && python train.py config/eval_gpt2.py
#
# Weights: fetched into the Hugging Face cache on first use (docs/gpt2.md, for offline
# use). Needs a GPU: 0.5 GB of fp32 weights plus the logits of one batch (8 x 1024 x 50257, about
# 2.5 GB with bf16 autocast); 2 x 500 batches of 8 x 1024 tokens is hours of work for a CPU.
out_dir = "out-eval-gpt2"
init_from = "gpt2"
eval_only = True
eval_iters = 500  # 4,000 windows of 1024 tokens per split
batch_size = 8
block_size = 1024
wandb_log = False
dataset = "openwebtext"
compile = True
