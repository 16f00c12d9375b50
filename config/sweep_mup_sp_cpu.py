# The standard parametrization at the widest width of sweep_mup_cpu.py (2 layers x 512, heads of 32),
# tuned there over four rates in 2x steps (lower than µP's grid: the standard model's best rate falls as
# it widens), 3 seeds: what µP's best at that width is held against. The grid was first 1.25e-3 to
# 1e-2; gelu's first runs put its best at that low edge (whole-split score 1.711-1.717 at 1.25e-3,
# 1.825 at 2.5e-3), so it moved two steps down before any other rate ran. relu's 12 runs then put its
# best at the new low edge (1.674 at 3.125e-4, 1.678 at 6.25e-4), so the grid gained one step more,
# 1.5625e-4, for every activation: one grid for all keeps the comparison fair.
# python sweep.py config/sweep_mup_sp_cpu.py
#
# Cost, measured on a 2-core AMD EPYC: 45 runs, 10.7 h of run time (715-1,451 s per run, the slowest
# while other work shared the cores), about 5.5 h 2 at a time.
name = "mup_sp_cpu"
base = "config/train_shakespeare_char_cpu.py"
activations = ["gelu", "relu", "none"]
seeds = [1, 2, 3]
overrides = dict(n_layer=2)
grid = {
    "width": {"w512": dict(n_embd=512, n_head=16)},
    "param": {"sp": dict(mup_base_width=0)},
    "learning_rate": [1.5625e-4, 3.125e-4, 6.25e-4, 1.25e-3, 2.5e-3],
}
