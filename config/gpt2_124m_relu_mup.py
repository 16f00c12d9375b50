# NOT RECOMMENDED YET: on one H200 the µP GPT-2 configs trained far worse than the standard ones (train loss
# 5.33-5.86 against 4.50 after 200 iterations); use the config without _mup until a GPU pilot says otherwise.
# GPT-2 small with ReLU under µP: gpt2_124m_relu.py with the learning rate mup_transfer.py transfers to it
# from 16-wide models (read that file for where the rates come from and what was not transferred).
import os

exec(open(os.path.join(os.path.dirname(__file__), "gpt2_124m_gelu.py")).read())
activation, out_dir = "relu", "out-gpt2-124m-relu"
exec(open(os.path.join(os.path.dirname(__file__), "mup_transfer.py")).read())
