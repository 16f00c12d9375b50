# The CPU study: gelu, relu and none at three model sizes, each at its own best learning rate
# (0.10M, 0.80M and 4.7M parameters), and at the base size over 5x longer training.
# python study.py config/study_cpu.py   (after the four sweeps below; each has its own report)
name = "study_cpu"
sizes = ["config/sweep_scale_small_cpu.py", "config/sweep_lr_cpu.py", "config/sweep_scale_large_cpu.py"]
length = "config/sweep_long_cpu.py"
at = [2000, 5000, 10000]
