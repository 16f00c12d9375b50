# The first verdict on subword tokens: English prose from the package registries (data/prose/prepare.py:
# 13 books-and-speeches and 18 documentation packages), tokenized with the 8,192-token BPE trained on its
# train split (prose_bpe8k: 27.1M train and 1.35M val tokens). The model is the 4.7M verdict's shape
# (6 layers x 256, head size 32), 6.8M parameters with the larger vocabulary; batch 12 x 64 tokens, 2,000
# iterations as there: 1.5M tokens, 5.7% of the train split, so no text is seen twice. GPT-2's context is
# 1,024 tokens; 64 keeps the sweep to about 5.5 hours of two cores (measured: 915-926 s per run, 2 at a time;
# block_size 128 doubled the step time).
# Selected, then judged, with the character verdicts' protocol: gelu and relu each choose a learning
# rate on seeds 1 and 2 from the same ~sqrt(2) grid as sweep_verdict_large_cpu.py; seeds 3-8, never used
# in the choice, then run at each chosen rate and alone give the verdict. 'none' runs at 1e-3 (its best
# rate at 4.7M on characters, not tuned here). A run's score is its best model's loss on every token of
# the validation split.
# The margin of equivalence, fixed here before any run: 0.01 nats per token.
# python data/prose/prepare.py --tokenizers=bpe8k && python sweep.py config/sweep_verdict_prose_cpu.py
name = "verdict_prose_cpu"
base = "config/train_shakespeare_char_cpu.py"
activations = ["gelu", "relu", "none"]
seeds = [1, 2]
heldout_seeds = [3, 4, 5, 6, 7, 8]
fixed_rates = {"none": 1e-3}
margin = 0.01
overrides = dict(dataset="prose_bpe8k", n_layer=6, n_head=8, n_embd=256)
grid = {"learning_rate": [3.5e-4, 5e-4, 7.1e-4, 1e-3, 1.4e-3, 2e-3]}
