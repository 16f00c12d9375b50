# The verdict at 0.80M parameters (train_shakespeare_char_cpu.py: 4 layers x 128, 2000 iterations),
# selected, then judged. gelu and relu each choose a learning rate on seeds 1-3 from a grid in ~sqrt(2)
# steps around 3e-3 (a parabola through sweep_lr_cpu.py's 3x grid put gelu's optimum near 5.5e-3 and
# relu's near 3.8e-3, both inside this grid); then seeds 4-13, never used in the choice, run at each
# chosen rate and alone give the verdict. 'none' is 0.26 behind, 25 times the margin: it needs no fine
# grid and runs at 3e-3, its best rate in sweep_lr_cpu.py, with the same held-out seeds.
# The margin of equivalence, fixed here before any run: 0.01 nats per character.
# python sweep.py config/sweep_verdict_base_cpu.py
#
# Cost on a 2-core CPU, estimated from sweep_lr_cpu.py (96-116 s per run, 2 at a time): 66 runs,
# about 55 minutes.
name = "verdict_base_cpu"
base = "config/train_shakespeare_char_cpu.py"
activations = ["gelu", "relu", "none"]
seeds = [1, 2, 3]
heldout_seeds = [4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
fixed_rates = {"none": 3e-3}
margin = 0.01
grid = {"learning_rate": [1.5e-3, 2.1e-3, 3e-3, 4.2e-3, 6e-3, 8.5e-3]}
