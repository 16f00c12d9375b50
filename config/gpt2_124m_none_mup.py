# GPT-2 small with activation 'none' under µP: gpt2_124m_gelu_mup.py (read it for where the rates come from
# and what was not transferred) with only the activation and its transferred learning rate changed.
exec(open(__file__.replace("_none_mup.py", "_gelu_mup.py")).read())
activation = "none"
learning_rate = 3.2e-2
min_lr = learning_rate / 10
learning_rate_from = ("transfer_cpu (config/sweep_transfer_cpu.py at b2969a9): none's best µP rate over widths "
                      "16 to 128, transferred, not tuned at this size")
out_dir = "out-gpt2-124m-none-mup"
