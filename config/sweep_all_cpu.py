# Every activation of the registry (model.ACTIVATIONS, 10 today) on train_shakespeare_char_cpu.py
# (2000 iterations), 3 seeds. Gated MLPs have their hidden width scaled to keep parameters and FLOPs.
# python sweep.py config/sweep_all_cpu.py
#
# Cost on a 2-core CPU, estimated from measured speed (~98 s per run with 2 runs side by side, as in
# sweep_claim_cpu.py; the gated MLPs do the same FLOPs): 30 runs, about 25 minutes.
from model import ACTIVATIONS as _ACTIVATIONS

name = "all_cpu"
base = "config/train_shakespeare_char_cpu.py"
activations = list(_ACTIVATIONS)
seeds = [1, 2, 3]
