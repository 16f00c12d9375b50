# The µP settings of the gpt2_*_mup.py configs, which run this file after setting `activation` and
# `out_dir` (it is not a config of its own). The base is shaped like the target: GPT-2's depth,
# tokenizer, context and batch at width 256 (4 heads of 64), where µP is the standard model exactly;
# the widths grow by heads of 64 (mup_base_head_dim=64), so attention is scaled by 1/8 at every width,
# as in the standard configs. At 124M m = 3, at XL m = 6.25.
#
# The rate is not tuned yet. η = 1.8e-3 is chosen so that at 124M the hidden matrices learn at the
# standard config's 6e-4 (η/m); the embeddings, LayerNorms and biases then learn at 1.8e-3, and at XL
# the hidden matrices at 2.9e-4 (the standard XL config: 2e-4). α_out stays 1. Tuning η, then α_out,
# at the base is config/sweep_mup_base_gpu.py (a GPU sweep, not run yet); its best per activation
# replaces these values, with learning_rate_from naming the sweep and its commit. The µP pilot
# (python -m tools.gpu_check --pilot=True) then checks 124M at η/2, η and 2η against the standard
# config. Until it passes, use the standard configs.
#
# Whether µP carries a base's rate across width under these rules is studied on the CPU with
# character-level models (config/sweep_mup_cpu.py, docs/mup.md); that study's rates are not used here:
# its base is 2 layers on characters, and µP does not transfer across depth, vocabulary or data.
mup_base_width = 256
mup_base_head_dim = 64
learning_rate = 1.8e-3
min_lr = learning_rate / 10
learning_rate_from = ("provisional: η at base width 256 set so that the hidden matrices of 124M learn at the standard "
                      "config's 6e-4, transferred by µP, not tuned (config/sweep_mup_base_gpu.py tunes it on a GPU)")
out_dir += "-mup"  # noqa: F821 (set by the caller)
