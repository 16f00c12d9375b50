# Longer training at the base size: train_shakespeare_char_cpu.py (4 layers x 128, 0.80M parameters)
# for 10,000 iterations instead of 2,000, the cosine schedule stretched to match, at 3e-3, the best
# learning rate of gelu, relu and none at 2,000 iterations (sweep_lr_cpu.py); 3 seeds. The report's
# curves give the comparison at 2,000, 5,000 and 10,000 iterations from the same runs.
# 10,000 iterations of 768 characters are 7.7M characters, 7.7 passes over the 1.0M of the
# training split (2,000 iterations are 1.5).
# python sweep.py config/sweep_long_cpu.py
#
# Cost on a 2-core CPU, 2 runs side by side: 9 runs in 52 minutes (measured: 515-865 s per run, the
# slower ones while other jobs shared the cores).
name = "long_cpu"
base = "config/train_shakespeare_char_cpu.py"
activations = ["gelu", "relu", "none"]
seeds = [1, 2, 3]
overrides = dict(max_iters=10000, lr_decay_iters=10000, learning_rate=3e-3)
