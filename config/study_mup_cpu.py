# µP's checks on the CPU: does the base's best rate transfer over 8x of width, is wider better at every
# step, and is µP at the widest width level with the standard parametrization tuned there? First with
# the multipliers at 1, then with the output multiplier tuned at the base (as µP's authors do).
# python study.py config/study_mup_cpu.py   (after the six sweeps below)
name = "mup_cpu_study"
transfer = ["config/sweep_mup_cpu.py", "config/sweep_mup_sp_cpu.py"]
out_base = "config/sweep_mup_out_cpu.py"
out_wide = ["config/sweep_mup_out_wide_cpu.py", "config/sweep_mup_out_wide_relu_cpu.py",
            "config/sweep_mup_out_wide_none_cpu.py"]
at = [250, 500, 1000, 2000]  # where µP's gap to SP opens: losses at these iterations of the widest runs
