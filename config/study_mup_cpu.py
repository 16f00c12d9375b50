# µP's checks on the CPU: does the base's best rate transfer over 8x of width, is wider better at every
# step, and is µP at the widest width level with the standard parametrization tuned there?
# python study.py config/study_mup_cpu.py   (after sweep_mup_cpu.py and sweep_mup_sp_cpu.py)
name = "mup_cpu_study"
transfer = ["config/sweep_mup_cpu.py", "config/sweep_mup_sp_cpu.py"]
