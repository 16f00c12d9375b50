# The claim on one GPU: gelu, relu and none on nanoGPT's baby Shakespeare GPT
# (train_shakespeare_char.py: 6 layers, 384 dims, 5000 iterations), bf16 and torch.compile, 2 seeds.
# python sweep.py config/sweep_gpu.py
#
# Cost, estimated (not measured here): nanoGPT reports about 3 minutes per run on an A100; on an H100
# about 2.5 minutes each (compile ~40 s, 5000 iterations at ~15 ms, 21 evaluations of 400 batches).
# This model leaves most of an H100 idle, so 3 runs share it at once: 6 runs in about 8 minutes.
name = "gpu"
base = "config/train_shakespeare_char.py"
activations = ["gelu", "relu", "none"]
seeds = [1, 2]
overrides = dict(device="cuda", dtype="bfloat16", compile=True)
parallel = 3
threads = 0  # torch's default; data loading is light
