# The largest size of the tuned scale comparison: 6 layers x 256 dims (4.7M parameters, head size 32),
# otherwise train_shakespeare_char_cpu.py (2000 iterations); gelu, relu and none. A two-stage search,
# since a run of this size costs about 4 times one of the base size: seed 1 at every learning rate
# of the grid picks each activation's best rate, then seeds 2 and 3 run at that rate only.
# python sweep.py config/sweep_scale_large_cpu.py
#
# Cost on a 2-core CPU, 2 runs side by side: 18 runs, 3.3 hours of run time, about 1.7 hours
# (measured: 519-963 s per run, with other jobs sharing the cores).
name = "scale_large_cpu"
base = "config/train_shakespeare_char_cpu.py"
activations = ["gelu", "relu", "none"]
seeds = [1]
heldout_seeds = [2, 3]
overrides = dict(n_layer=6, n_head=8, n_embd=256)
grid = {"learning_rate": [3e-4, 1e-3, 3e-3, 1e-2]}
