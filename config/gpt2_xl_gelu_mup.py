# GPT-2 XL with GELU under µP: gpt2_xl_gelu.py (read it for needs and launch commands) with
# mup_base_width=16 and a learning rate transferred from 16-wide models, not tuned at this size.
#
# Where the rate comes from: sweep transfer_cpu (config/sweep_transfer_cpu.py, runs at commits edb827d
# and b2969a9; results/transfer_cpu_study/study.md): 2-layer character models of widths 16 to 128 on
# tiny Shakespeare for 500 iterations, µP based at width 16. The rate is the one of lowest mean score
# over all four widths and both seeds under µP (gelu 0.032, relu 0.016, none 0.032). Across the widths,
# the best rate moved one 2x step under µP for gelu and relu and two for none; under the standard
# parametrization two, one and three (the study's table).
#
# What was not transferred: depth (2 layers there, 48 here), head size (16 there, 64 here), training
# length (500 iterations there), batch, data and vocabulary (characters there, BPE here), the warmup
# and schedule, weight decay and the output multiplier (1 at the base width, so 16/1600 here). At 8x
# on the CPU, the µP models at their best rate trailed the standard ones at theirs (the study's
# scores): a transferred rate is not a tuned one. Run a short pilot (e.g. --max_iters=2000) beside
# gpt2_xl_gelu.py before paying for the whole run.
exec(open(__file__.rsplit("_", 2)[0] + "_gelu.py").read())  # gpt2_xl_gelu.py, also when a sibling runs this
mup_base_width = 16
learning_rate = 3.2e-2  # the hidden matrices learn at 3.2e-2 * 16 / 1600 = 3.2e-4
min_lr = learning_rate / 10
learning_rate_from = ("transfer_cpu (config/sweep_transfer_cpu.py at b2969a9): gelu's best µP rate over widths "
                      "16 to 128, transferred, not tuned at this size")
out_dir = "out-gpt2-xl-gelu-mup"
