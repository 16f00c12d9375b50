# Activation surgery on GPT-2 124M: OpenAI's weights (trained with the tanh GELU) with each MLP's
# activation swapped, then fine-tuned briefly on Shakespeare (GPT-2 BPE). gelu_tanh, the activation
# the weights were trained with, is the reference; 3 seeds (the seed changes the batches only, the
# weights all start from GPT-2).
# python data/shakespeare/prepare.py && python sweep.py config/sweep_surgery.py
#
# Cost, estimated (not measured here): finetune_shakespeare.py is 20 iterations of 32,768 tokens, seconds
# of GPU work for 124M parameters; torch.compile and loading the weights make it 1-2 minutes a run on an
# H100: 12 runs one at a time, about 20 minutes.
name = "surgery"
base = "config/finetune_shakespeare.py"
activations = ["gelu_tanh", "gelu", "relu", "none"]
reference = "gelu_tanh"
seeds = [1, 2, 3]
overrides = dict(init_from="gpt2")
parallel = 1
threads = 0
