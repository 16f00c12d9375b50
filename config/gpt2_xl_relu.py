# GPT-2 XL on OpenWebText with activation 'relu': gpt2_xl_gelu.py (read it for needs and launch
# commands) with only the activation changed, so the two runs differ in nothing else.
exec(open(__file__.replace("_relu.py", "_gelu.py")).read())
activation = "relu"
out_dir = "out-gpt2-xl-relu"
