# The claim on one GPU: gelu, relu and none on nanoGPT's baby Shakespeare GPT
# (train_shakespeare_char.py: 6 layers, 384 dims, 5000 iterations), bf16 and torch.compile, 2 seeds.
# python sweep.py config/sweep_gpu.py
#
# Cost, measured on one H200 (torch 2.11, 2026-11-29): 128-150 s per run with 3 runs sharing the GPU,
# 6 runs in about 5 minutes. Those runs are committed as results/gpu_h200 (report:
# python sweep.py config/sweep_gpu.py --name=gpu_h200 --report_only=True).
name = "gpu"
base = "config/train_shakespeare_char.py"
activations = ["gelu", "relu", "none"]
seeds = [1, 2]
overrides = dict(device="cuda", dtype="bfloat16", compile=True)
parallel = 3
threads = 0  # torch's default; data loading is light
