# The verdict at 4.7M parameters (6 layers x 256, head size 32; otherwise train_shakespeare_char_cpu.py,
# 2000 iterations), selected, then judged. gelu and relu each choose a learning rate on seeds 1 and 2
# from a grid in ~sqrt(2) steps around 1e-3 (a parabola through sweep_scale_large_cpu.py's 3x grid put
# gelu's optimum near 1.25e-3 and relu's near 6.7e-4, both inside this grid); then seeds 3-8, never
# used in the choice, run at each chosen rate and alone give the verdict. 'none' runs at 1e-3, its best
# rate in sweep_scale_large_cpu.py, with the same held-out seeds.
# The margin of equivalence, fixed here before any run: 0.01 nats per character.
# python sweep.py config/sweep_verdict_large_cpu.py
#
# Cost measured on a 2-core AMD EPYC, 2 runs at a time: 695-956 s per run, 9.7 hours of run time for
# the 42 runs, so about 4.9 hours from start to end.
name = "verdict_large_cpu"
base = "config/train_shakespeare_char_cpu.py"
activations = ["gelu", "relu", "none"]
seeds = [1, 2]
heldout_seeds = [3, 4, 5, 6, 7, 8]
fixed_rates = {"none": 1e-3}
margin = 0.01
overrides = dict(n_layer=6, n_head=8, n_embd=256)
grid = {"learning_rate": [3.5e-4, 5e-4, 7.1e-4, 1e-3, 1.4e-3, 2e-3]}
