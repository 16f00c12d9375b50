# The claim on a CPU: gelu, relu and none on train_shakespeare_char_cpu.py (2000 iterations), 5 seeds.
# python sweep.py config/sweep_claim_cpu.py
#
# Cost on a 2-core CPU, estimated from measured speed (2 runs side by side, 1 thread each: 45 ms per
# iteration and run, plus ~5 s of evaluation and ~3 s of start-up): ~98 s per run, 15 runs two at a
# time, about 13 minutes.
name = "claim_cpu"
base = "config/train_shakespeare_char_cpu.py"
activations = ["gelu", "relu", "none"]
seeds = [1, 2, 3, 4, 5]
