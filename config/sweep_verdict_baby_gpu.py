# The verdict at 10.6M parameters in one GPU call: nanoGPT's baby GPT (train_shakespeare_char.py: 6 layers
# x 384, dropout 0.2, batch 64 x 256 characters) on tiny Shakespeare, selected, then judged, as the CPU
# verdicts are: gelu and relu each choose a learning rate on seeds 1 and 2 from a ~sqrt(2) grid around
# nanoGPT's 1e-3; seeds 3-6, never used in the choice, then run at each chosen rate and alone give the
# verdict; 'none' runs at 1e-3. 1,500 iterations (the schedule ends there; nanoGPT's 5,000-iteration
# runs had their best val loss at 1,500-2,250, then overfit: results/gpu_h200), 24 runs, 3 at a time.
# The margin of equivalence, fixed here before any run: 0.01 nats per character.
# python data/shakespeare_char/prepare.py && python sweep.py config/sweep_verdict_baby_gpu.py
#
# GPU time, estimated, not measured: on one H200, 6 runs of 5,000 iterations of this model took about
# 5 minutes 3 at a time (config/sweep_gpu.py, 2026-11-29), about 10 ms per iteration over the GPU with
# compilation included; 24 runs x 1,500 iterations is 36,000 iterations: about 6-7 minutes.
name = "verdict_baby_gpu"
base = "config/train_shakespeare_char.py"
activations = ["gelu", "relu", "none"]
seeds = [1, 2]
heldout_seeds = [3, 4, 5, 6]
fixed_rates = {"none": 1e-3}
margin = 0.01
overrides = dict(device="cuda", dtype="bfloat16", compile=True, max_iters=1500, lr_decay_iters=1500, eval_iters=50)
grid = {"learning_rate": [7.1e-4, 1e-3, 1.4e-3]}
parallel = 3
threads = 0  # torch's default; data loading is light
