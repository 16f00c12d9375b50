# Does µP earn its place (its checks: python study.py config/study_mup_cpu.py)? Character-level GPTs of
# 2 layers, widths 64 to 512 (8x) growing by heads of 32, so the attention scale is 1/sqrt(32) at every
# width; µP's base is the 64-wide model (2 heads), where µP is the standard model exactly. Each width at
# the same five learning rates in 2x steps around the base's best (1e-2 for the standard 2 x 64 model in
# sweep_scale_small_cpu.py), 3 seeds, 2,000 iterations. The grid first ended at 2e-2; gelu's best was
# there at width 512, so 4e-2 was added (the runs already made are unchanged). The standard
# parametrization tuned at the widest width alone is sweep_mup_sp_cpu.py. Multipliers (α_in, α_out,
# α_attn) are left at 1.
# python sweep.py config/sweep_mup_cpu.py && python sweep.py config/sweep_mup_sp_cpu.py
#
# Cost, measured on a 2-core AMD EPYC, 2 runs at a time: 23-46 s per run at width 64, 61-179 s at 128,
# 198-636 s at 256, 692-839 s at 512 (the upper ends when tests shared the cores); 180 runs, 13.7 h of
# run time, about 7 h from start to end; resumable, it ran over several sittings.
name = "mup_cpu"
base = "config/train_shakespeare_char_cpu.py"
activations = ["gelu", "relu", "none"]
seeds = [1, 2, 3]
overrides = dict(n_layer=2)
grid = {
    "width": {"w64": dict(n_embd=64, n_head=2), "w128": dict(n_embd=128, n_head=4),
              "w256": dict(n_embd=256, n_head=8), "w512": dict(n_embd=512, n_head=16)},
    "param": {"mup": dict(mup_base_width=64, mup_base_head_dim=32)},
    "learning_rate": [2.5e-3, 5e-3, 1e-2, 2e-2, 4e-2],
}
