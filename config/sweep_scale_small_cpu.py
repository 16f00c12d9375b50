# The smallest size of the tuned scale comparison: 2 layers x 64 dims (0.10M parameters, head size 32),
# otherwise train_shakespeare_char_cpu.py (2000 iterations); gelu, relu and none at every learning
# rate of the grid, 3 seeds. The report compares each activation at its own best rate.
# python sweep.py config/sweep_scale_small_cpu.py
#
# Cost on a 2-core CPU, 2 runs side by side: 36 runs in 10 minutes (measured: 21-40 s per run, with
# other jobs sharing the cores).
name = "scale_small_cpu"
base = "config/train_shakespeare_char_cpu.py"
activations = ["gelu", "relu", "none"]
seeds = [1, 2, 3]
overrides = dict(n_layer=2, n_head=2, n_embd=64)
grid = {"learning_rate": [1e-3, 3e-3, 1e-2, 3e-2]}
