# The claim at three model sizes (head size 32 throughout): small 2 layers x 64 (0.10M parameters),
# base 4 x 128 (the CPU config, 0.80M) and large 6 x 256 (4.7M), each for 2000 iterations;
# gelu, relu and none, 2 seeds. The report has one table per size.
# python sweep.py config/sweep_scale_cpu.py
#
# Cost on a 2-core CPU, 2 runs side by side: measured 8.5, 45 and 200 ms per iteration and run
# for the three sizes, so about 13 s, 98 s and 430 s per run (with evaluation and start-up):
# 18 runs, about 27 minutes, most of it the large size.
name = "scale_cpu"
base = "config/train_shakespeare_char_cpu.py"
activations = ["gelu", "relu", "none"]
seeds = [1, 2]
grid = {
    "size": {
        "small": dict(n_layer=2, n_head=2, n_embd=64),
        "base": dict(n_layer=4, n_head=4, n_embd=128),
        "large": dict(n_layer=6, n_head=8, n_embd=256),
    }
}
