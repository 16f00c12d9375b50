# µP's output multiplier α_out tuned at the base of config/sweep_mup_cpu.py (2 layers x 64, heads of 32,
# where µP is the standard model exactly at α_out = 1), as µP's authors tune it and as
# config/sweep_mup_base_gpu.py does for the GPT-2 configs (there α_out 1 to 8): here α_out 1, 2, 4, 8, 16
# x the same five rates, 3 seeds, 2,000 iterations. Made after µP at the defaults (α_out = 1) trailed the standard
# parametrization tuned at width 512 (sweep_mup_sp_cpu.py): does the base's best (η, α_out) carry
# further? The α_out = 1 runs repeat sweep_mup_cpu.py's width-64 runs (same seeds, same numbers).
# The grid was first α_out 1 to 8; the best without an activation (none) lay at 8, the grid's edge, and
# improved at each step (2.122, 2.115, 2.096, 2.082 at each α_out's best rate), so α_out = 16 was added,
# for every activation (one grid for all), before none's width-512 runs.
# python sweep.py config/sweep_mup_out_cpu.py
#
# Cost: 225 runs of about 30 s (measured at width 64), 2 at a time: about 1 h.
name = "mup_out_cpu"
base = "config/train_shakespeare_char_cpu.py"
activations = ["gelu", "relu", "none"]
seeds = [1, 2, 3]
overrides = dict(n_layer=2, n_embd=64, n_head=2, mup_base_width=64, mup_base_head_dim=32)
grid = {"learning_rate": [2.5e-3, 5e-3, 1e-2, 2e-2, 4e-2], "mup_output_mult": [1.0, 2.0, 4.0, 8.0, 16.0]}
