# Does ReLU's lead at 4.7M parameters survive a longer budget? The model of sweep_verdict_large_cpu.py
# (6 layers x 256, head size 32) trained 6,000 iterations instead of 2,000, the cosine schedule
# stretched to 6,000, each activation at the rate it chose there: gelu 1.4e-3, relu 7.1e-4. Those
# rates are the best of a 2,000-iteration budget, not re-tuned for this one (a longer run may want a
# lower rate). Judged on the same held-out seeds 3-8; each run's model is scored on the whole
# validation split at 2,000, 4,000 and 6,000 iterations, so the report gives the paired verdict at
# each point of one run and the gap's trend.
# The margin of equivalence is the verdict sweep's, fixed before any run: 0.01 nats per character.
# python sweep.py config/sweep_long_large_cpu.py
name = "long_large_cpu"
base = "config/train_shakespeare_char_cpu.py"
activations = ["gelu", "relu"]
heldout_seeds = [3, 4, 5, 6, 7, 8]
fixed_rates = {"gelu": 1.4e-3, "relu": 7.1e-4}
margin = 0.01
overrides = dict(n_layer=6, n_head=8, n_embd=256, max_iters=6000, lr_decay_iters=6000, score_iters=[2000, 4000])
grid = {"learning_rate": [7.1e-4, 1.4e-3]}
