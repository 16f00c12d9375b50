# µP's base for the GPT-2 configs, tuned where it will be used: GPT-2 small's depth (12 layers), head
# size (64), tokenizer, context (1,024) and batch (12) at width 256 (4 heads), where µP is the standard
# model exactly; widths then grow by heads of 64 (mup_base_head_dim=64), so the attention scale is 1/8
# at every width. Each activation at 5 rates in 2x steps x the output multiplier α_out 1, 2, 4, 8, on the
# prose corpus's books, 2,000 iterations of 12 x 1,024 tokens (1.9 passes), seed 1. The base's best
# (η, α_out) per activation then goes into config/mup_transfer.py, and the µP pilot
# (python -m tools.gpu_check --pilot=True) checks 124M at η/2, η, 2η against the standard config.
# python data/prose/prepare.py --parts=literature --tokenizers=gpt2 && python sweep.py config/sweep_mup_base_gpu.py
#
# GPU time, estimated, not measured: a step of this 22M-parameter model (9.4M in its blocks) is a few
# ms on an H200 against 27 ms for 124M; 60 runs x 2,000 iterations, 3 at a time, about 10 minutes.
name = "mup_base_gpu"
base = "config/gpt2_124m_gelu.py"
activations = ["gelu", "relu", "none"]
seeds = [1]
overrides = dict(dataset="prose_literature_gpt2", n_embd=256, n_head=4, mup_base_width=256, mup_base_head_dim=64,
                 gradient_accumulation_steps=1, max_iters=2000, lr_decay_iters=2000, warmup_iters=100,
                 eval_interval=500, eval_iters=50)
grid = {"learning_rate": [1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2], "mup_output_mult": [1.0, 2.0, 4.0, 8.0]}
parallel = 3
threads = 0
