# config/sweep_mup_out_wide_cpu.py for no activation: µP at width 512 (8x the base) with its best output
# multiplier at the base. Its best there (sweep_mup_out_cpu.py, mean of 3 seeds) was α_out = 8 at 5e-3:
# 2.0820 against 2.1220 at α_out = 1 and 2.0954 at α_out = 16's best (2.5e-3), the step added when 8 was
# the grid's edge; here at that rate and one 2x step above it, 3 seeds, 2,000 iterations. Held against
# sweep_mup_sp_cpu.py's runs without an activation.
# python sweep.py config/sweep_mup_out_wide_none_cpu.py
#
# Cost, measured on a 2-core AMD EPYC: 6 runs of 718-727 s, 72 min of run time, 37 minutes 2 at a time.
name = "mup_out_wide_none_cpu"
base = "config/train_shakespeare_char_cpu.py"
activations = ["none"]
reference = "none"  # the only activation here
seeds = [1, 2, 3]
overrides = dict(n_layer=2, n_embd=512, n_head=16, mup_base_width=64, mup_base_head_dim=32, mup_output_mult=8.0)
grid = {"learning_rate": [5e-3, 1e-2]}
