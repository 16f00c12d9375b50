# GPT-2 XL with activation 'relu' under µP: gpt2_xl_gelu_mup.py (read it for where the rates come from
# and what was not transferred) with only the activation and its transferred learning rate changed.
exec(open(__file__.replace("_relu_mup.py", "_gelu_mup.py")).read())
activation = "relu"
learning_rate = 1.6e-2
min_lr = learning_rate / 10
learning_rate_from = ("transfer_cpu (config/sweep_transfer_cpu.py at b2969a9): relu's best µP rate over widths "
                      "16 to 128, transferred, not tuned at this size")
out_dir = "out-gpt2-xl-relu-mup"
