# µP at width 512 (8x the base) with the base's best output multiplier: does tuning α_out at the base
# close the gap to the standard parametrization tuned at 512 (sweep_mup_sp_cpu.py)? gelu's best at the
# base (sweep_mup_out_cpu.py, mean of 3 seeds) was α_out = 4 at 1e-2, 1.8340 against 1.8528 at α_out = 1;
# here at that rate (µP's claim: it carries) and one 2x step above it (where µP's best lay at 512 with
# α_out = 1, sweep_mup_cpu.py), 3 seeds, 2,000 iterations.
# python sweep.py config/sweep_mup_out_wide_cpu.py
#
# Cost: 6 runs of about 800 s (measured at width 512), 2 at a time: about 40 minutes.
name = "mup_out_wide_cpu"
base = "config/train_shakespeare_char_cpu.py"
activations = ["gelu"]
seeds = [1, 2, 3]
overrides = dict(n_layer=2, n_embd=512, n_head=16, mup_base_width=64, mup_base_head_dim=32, mup_output_mult=4.0)
grid = {"learning_rate": [1e-2, 2e-2]}
