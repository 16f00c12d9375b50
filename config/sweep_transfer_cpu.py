# µTransfer on a CPU: does each activation's best learning rate stay put as the model widens? Under µP
# (mup_base_width=32: the rate is the width-32 model's, and wider models scale it themselves) and under the
# standard parametrization, gelu, relu and none, widths 32 to 256 (8x) at 2 layers and heads of 32
# dimensions, 500 iterations of train_shakespeare_char_cpu.py's batches (warmup 50, cosine to 0), learning
# rates in 2x steps, 2 seeds. The study (config/study_transfer_cpu.py) tables each width's best rate and
# draws the score against the rate, a curve per width.
# python sweep.py config/sweep_transfer_cpu.py && python study.py config/study_transfer_cpu.py
#
# Cost on a 2-core CPU, 2 runs side by side, estimated from one run per width at 4e-3 (19, 37, 96 and 311 s
# for widths 64 to 512 while two other runs shared the cores): widths 64 to 512 would take about 3.6 hours;
# 32 to 256, the grid below, about 1 hour (336 runs).
name = "transfer_cpu"
base = "config/train_shakespeare_char_cpu.py"
activations = ["gelu", "relu", "none"]
seeds = [1, 2]
overrides = dict(n_layer=2, max_iters=500, lr_decay_iters=500, warmup_iters=50, min_lr=0.0, eval_interval=100)
grid = {
    "width": {"w32": dict(n_embd=32, n_head=1), "w64": dict(n_embd=64, n_head=2),
              "w128": dict(n_embd=128, n_head=4), "w256": dict(n_embd=256, n_head=8)},
    "param": {"sp": dict(mup_base_width=0), "mup": dict(mup_base_width=32)},
    "learning_rate": [5e-4, 1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2],
}
