# The claim across learning rates: gelu, relu and none x 3e-4, 1e-3, 3e-3, 1e-2 on
# train_shakespeare_char_cpu.py (2000 iterations), 3 seeds. The report compares each activation at
# its own best rate. min_lr stays the base config's 1e-4 at every rate.
# python sweep.py config/sweep_lr_cpu.py
#
# Cost on a 2-core CPU, estimated from measured speed (~98 s per run with 2 runs side by side, as in
# sweep_claim_cpu.py): 36 runs, about 30 minutes (measured: 96-116 s per run, 2 at a time; on
# another 2-core machine, with other jobs sharing the cores, 48 minutes, 111-192 s per run).
name = "lr_cpu"
base = "config/train_shakespeare_char_cpu.py"
activations = ["gelu", "relu", "none"]
seeds = [1, 2, 3]
grid = {"learning_rate": [3e-4, 1e-3, 3e-3, 1e-2]}
