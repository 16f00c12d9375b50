# Evaluate OpenAI's gpt2-large (774M parameters) on OpenWebText: eval_gpt2.py (read it for data,
# weights and cost) with another checkpoint. nanoGPT's README reports val loss 2.67 for it; it needs
# 3.1 GB of fp32 weights on the GPU besides the logits of one batch.
#
#   python data/openwebtext/prepare.py && python train.py config/eval_gpt2_large.py
exec(open(__file__.replace("_large.py", ".py")).read())
out_dir = "out-eval-gpt2-large"
init_from = "gpt2-large"
