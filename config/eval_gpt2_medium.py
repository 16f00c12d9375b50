# Evaluate OpenAI's gpt2-medium (350M parameters) on OpenWebText: eval_gpt2.py (read it for data,
# weights and cost) with another checkpoint. nanoGPT's README reports val loss 2.84 for it; it needs
# 1.4 GB of fp32 weights on the GPU besides the logits of one batch.
#
#   python data/openwebtext/prepare.py && python train.py config/eval_gpt2_medium.py
exec(open(__file__.replace("_medium.py", ".py")).read())
out_dir = "out-eval-gpt2-medium"
init_from = "gpt2-medium"
