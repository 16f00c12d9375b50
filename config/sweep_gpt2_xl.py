# GPT-2 XL (1.56B parameters) on OpenWebText with gelu, relu and none: one seed each, every run on a
# whole node of 8 GPUs (torchrun), one run at a time.
# python sweep.py config/sweep_gpt2_xl.py
#
# Cost, estimated: gpt2_xl_gelu.py is 60,000 iterations of 524,288 tokens, a little over a day per
# run on 8 H100s at an assumed 40% MFU: about 3.5 days for the 3 runs. With one seed the report can
# give each activation's loss but no test of the differences (it says n/a).
name = "gpt2_xl"
base = "config/gpt2_xl_gelu.py"
activations = ["gelu", "relu", "none"]
seeds = [1337]
torchrun = 8
parallel = 1
threads = 0
wandb_log = True
