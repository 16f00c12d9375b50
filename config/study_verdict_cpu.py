# The verdict across sizes: the two select-then-judge sweeps (0.80M and 4.7M parameters), each activation
# at the rate its selection seeds chose, judged by held-out seeds on the whole validation split.
# python study.py config/study_verdict_cpu.py   (after the two sweeps below; each has its own report)
name = "study_verdict_cpu"
sizes = ["config/sweep_verdict_base_cpu.py", "config/sweep_verdict_large_cpu.py"]
