# Learning rates across widths, with and without µP: each width's best rate in sweep_transfer_cpu.py.
# python study.py config/study_transfer_cpu.py   (after python sweep.py config/sweep_transfer_cpu.py)
name = "transfer_cpu_study"
transfer = ["config/sweep_transfer_cpu.py"]
