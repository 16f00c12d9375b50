# Evaluate OpenAI's gpt2-xl (1558M parameters) on OpenWebText: eval_gpt2.py (read it for data,
# weights and cost) with another checkpoint. nanoGPT's README reports val loss 2.54 for it; it needs
# 6.2 GB of fp32 weights on the GPU besides the logits of one batch.
#
#   python data/openwebtext/prepare.py && python train.py config/eval_gpt2_xl.py
exec(open(__file__.replace("_xl.py", ".py")).read())
out_dir = "out-eval-gpt2-xl"
init_from = "gpt2-xl"
