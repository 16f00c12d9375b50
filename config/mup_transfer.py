# The µP settings of the gpt2_*_mup.py configs, which run this file after setting `activation` and
# `out_dir` (it is not a config of its own): mup_base_width=16 and each activation's learning rate
# transferred from 16-wide models, not tuned at GPT-2's sizes.
#
# Where the rates come from: sweep transfer_cpu (config/sweep_transfer_cpu.py, runs at commits edb827d
# and b2969a9; results/transfer_cpu_study/study.md): 2-layer character models of widths 16 to 128 on
# tiny Shakespeare for 500 iterations, µP based at width 16. Each rate is the one of lowest mean score
# over all four widths and both seeds under µP. Across the widths, the best rate moved one 2x step
# under µP for gelu and relu and two for none; under the standard parametrization two, one and three
# (the study's table).
#
# What was not transferred: depth (2 layers there, 12 or 48 here), head size (16 there, 64 here),
# training length (500 iterations there), batch, data and vocabulary (characters there, BPE here), the
# warmup and schedule, weight decay and the output multiplier (1 at the base width, so 16/n_embd here).
# At 8x on the CPU, the µP models at their best rate trailed the standard ones at theirs by 0.20-0.26
# (the study's scores): a transferred rate is not a tuned one. On one H200, 200 iterations of each
# GPT-2 124M config on tiny Shakespeare BPE gave train losses of 5.59 (gelu), 5.33 (relu) and 5.86
# (none) under these settings against 4.50 for the standard gelu config. The transfer runs scaled
# attention by 1/d_head; µP now scales it by sqrt(d_base_head)/d_head, the base's head being the
# model's own unless mup_base_head_dim says otherwise, so these rates come from other rules than
# the ones these configs now run under. Use the standard configs.
mup_base_width = 16
learning_rate = {"gelu": 3.2e-2, "relu": 1.6e-2, "none": 3.2e-2}[activation]  # noqa: F821 (set by the caller)
min_lr = learning_rate / 10
learning_rate_from = (f"transfer_cpu (config/sweep_transfer_cpu.py at b2969a9): {activation}'s best µP rate "  # noqa: F821
                      "over widths 16 to 128, transferred, not tuned at this size")
out_dir += "-mup"  # noqa: F821
