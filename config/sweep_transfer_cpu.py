# µTransfer on a CPU: does each activation's best learning rate stay put as the model widens? Under µP
# (mup_base_width=16: the rate is the width-16 model's, and wider models scale it themselves) and under the
# standard parametrization, gelu, relu and none, widths 16 to 128 (8x) at 2 layers and heads of 16
# dimensions, 500 iterations of train_shakespeare_char_cpu.py's batches (warmup 50, cosine to 0), learning
# rates in 2x steps, 2 seeds. The rates reach 0.128 because the width-16 model, and so every µP width, was
# still improving at 0.032, the first grid's edge. The study (config/study_transfer_cpu.py) tables each
# width's best rate and draws the score against the rate, a curve per width.
# python sweep.py config/sweep_transfer_cpu.py && python study.py config/study_transfer_cpu.py
#
# Cost on a 2-core CPU, 2 runs side by side: 384 runs in 79 minutes on an AMD EPYC (measured, tests sharing
# the cores). Wider models cost more than a sitting: width 256 took 96 s per run and 512 311 s.
name = "transfer_cpu"
base = "config/train_shakespeare_char_cpu.py"
activations = ["gelu", "relu", "none"]
seeds = [1, 2]
overrides = dict(n_layer=2, max_iters=500, lr_decay_iters=500, warmup_iters=50, min_lr=0.0, eval_interval=100)
grid = {
    "width": {"w16": dict(n_embd=16, n_head=1), "w32": dict(n_embd=32, n_head=2),
              "w64": dict(n_embd=64, n_head=4), "w128": dict(n_embd=128, n_head=8)},
    "param": {"sp": dict(mup_base_width=0), "mup": dict(mup_base_width=16)},
    "learning_rate": [1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2, 6.4e-2, 1.28e-1],
}
