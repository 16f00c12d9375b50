# GPT-2 XL on OpenWebText with activation 'none': gpt2_xl_gelu.py (read it for needs and launch
# commands) with only the activation changed, so the two runs differ in nothing else.
exec(open(__file__.replace("_none.py", "_gelu.py")).read())
activation = "none"
out_dir = "out-gpt2-xl-none"
