# Every activation of the registry (model.ACTIVATIONS, 10 today) on train_shakespeare_char_cpu.py
# (2000 iterations) at learning rate 3e-3, the best rate of gelu, relu and none in sweep_lr_cpu.py,
# 4 seeds. Gated MLPs have their hidden width scaled to keep parameters and FLOPs.
# python sweep.py config/sweep_all_cpu.py
#
# Cost on a 2-core CPU, estimated from measured speed (96-116 s per run with 2 runs side by side, in
# sweep_lr_cpu.py; the gated MLPs do the same FLOPs): 40 runs, about 35 minutes (measured: 36 min,
# 94-120 s per run, 2 at a time).
from model import ACTIVATIONS as _ACTIVATIONS

name = "all_cpu"
base = "config/train_shakespeare_char_cpu.py"
activations = list(_ACTIVATIONS)
seeds = [1, 2, 3, 4]
grid = {"learning_rate": [3e-3]}
