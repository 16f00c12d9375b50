# Every activation of the registry (model.ACTIVATIONS, 10 today) on train_shakespeare_char_cpu.py
# (2000 iterations) at 1e-3 (the base config's rate) and 3e-3 (the best rate of gelu, relu and none
# in sweep_lr_cpu.py), 3 seeds. Gated MLPs have their hidden width scaled to keep parameters and
# FLOPs. The report compares each activation at its own best rate of the two.
# python sweep.py config/sweep_all_cpu.py
#
# Cost on a 2-core CPU, estimated from measured speed (~98 s per run with 2 runs side by side, as in
# sweep_claim_cpu.py; the gated MLPs do the same FLOPs): 60 runs, about 50 minutes.
from model import ACTIVATIONS as _ACTIVATIONS

name = "all_cpu"
base = "config/train_shakespeare_char_cpu.py"
activations = list(_ACTIVATIONS)
seeds = [1, 2, 3]
grid = {"learning_rate": [1e-3, 3e-3]}
