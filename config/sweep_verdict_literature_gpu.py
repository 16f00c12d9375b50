# The verdict at 30M parameters on GPT-2's tokens, in one GPU call: the baby GPT's shape (6 layers x 384,
# head size 64) with GPT-2's BPE (50,304 embeddings: 29.9M parameters) on the books and speeches of the
# prose corpus (prose_literature_gpt2: 12.9M train and 0.65M val tokens). Batch 16 x 256 tokens, 2,000
# iterations: 8.2M tokens, 0.64 of a pass, so no text is seen twice; no dropout, as in GPT-2's training.
# Selected, then judged: gelu and relu choose a rate on seeds 1 and 2 from a ~sqrt(2) grid around 1e-3;
# seeds 3-6 judge; 'none' runs at 1e-3. 24 runs, 3 at a time.
# The margin of equivalence, fixed here before any run: 0.01 nats per token.
# python data/prose/prepare.py --parts=literature --tokenizers=gpt2
# python sweep.py config/sweep_verdict_literature_gpu.py
# (the token files are 27 MB: prepare them where the packages can be downloaded and carry the folder)
#
# GPU time, estimated, not measured: a step here is about 0.7x the baby GPT's in arithmetic (4,096
# tokens of a 30M model against 16,384 of a 10.6M one), so about 7 ms per iteration over the GPU;
# 24 runs x 2,000 iterations plus compilation: about 7 minutes on one H200.
name = "verdict_literature_gpu"
base = "config/train_shakespeare_char.py"
activations = ["gelu", "relu", "none"]
seeds = [1, 2]
heldout_seeds = [3, 4, 5, 6]
fixed_rates = {"none": 1e-3}
margin = 0.01
overrides = dict(dataset="prose_literature_gpt2", batch_size=16, dropout=0.0, max_iters=2000, lr_decay_iters=2000,
                 eval_iters=50, device="cuda", dtype="bfloat16", compile=True)
grid = {"learning_rate": [7.1e-4, 1e-3, 1.4e-3]}
parallel = 3
threads = 0
