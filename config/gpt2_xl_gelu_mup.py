# NOT RECOMMENDED YET: the µP pilot (python -m tools.gpu_check --pilot=True) has not passed; use the
# config without _mup. (Under µP's earlier base and rules these configs trained far worse on one H200.)
# GPT-2 XL with GELU under µP: gpt2_xl_gelu.py with the learning rate mup_transfer.py gives it
# from a 256-wide base (read that file for where the rates come from and what was not transferred).
import os

exec(open(os.path.join(os.path.dirname(__file__), "gpt2_xl_gelu.py")).read())
activation, out_dir = "gelu", "out-gpt2-xl-gelu"
exec(open(os.path.join(os.path.dirname(__file__), "mup_transfer.py")).read())
