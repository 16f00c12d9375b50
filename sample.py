"""
Sample from a trained model (or a published GPT-2).

    python sample.py --out_dir=out-shakespeare-char-cpu --start="ROMEO:" --num_samples=3
    python sample.py --init_from=gpt2 --start=FILE:prompt.txt
"""

import os
from types import SimpleNamespace

import torch

import checkpoint
import tokenizer
from configurator import UserError, configure, run_main
from train import PRETRAINED, autocast, dataset_dir, resolve_device

DEFAULTS = dict(
    init_from="resume",  # 'resume' (from out_dir), 'gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl', or a folder
    out_dir="out",
    checkpoint="ckpt.pt",  # or best.pt, the checkpoint with the best val loss
    start="\n",  # prompt text, or FILE:path to read it from a file
    num_samples=10,
    max_new_tokens=500,
    temperature=0.8,  # < 1 sharper, > 1 more random
    top_k=200,  # sample among the top_k most likely tokens
    seed=1337,
    device="auto",
    dtype="auto",
    matmul_precision="high",  # as in train.py
    compile=False,
)


def main(argv):
    cfg = SimpleNamespace(**configure(DEFAULTS, argv))
    if cfg.temperature <= 0:
        raise UserError(f"temperature={cfg.temperature} must be > 0 (e.g. 0.8)")
    if cfg.top_k <= 0:
        raise UserError(f"top_k={cfg.top_k} must be a positive integer (e.g. 200)")
    if cfg.init_from not in ("resume",) + PRETRAINED and not os.path.isdir(cfg.init_from):
        raise UserError(f"init_from={cfg.init_from!r} is not valid; choose resume, one of {', '.join(PRETRAINED)}, "
                        "or a folder holding a transformers GPT-2")
    device_type = resolve_device(cfg)
    torch.manual_seed(cfg.seed)
    if cfg.init_from == "resume":
        ckpt = checkpoint.load(os.path.join(cfg.out_dir, cfg.checkpoint))
        model = checkpoint.build_model(ckpt)
        encode, decode = tokenizer.load(dataset_dir(ckpt["config"]["dataset"]))
    else:
        import hf

        model = hf.load_pretrained(cfg.init_from)
        if model.config.vocab_size <= tokenizer.EOT:
            raise UserError(f"{cfg.init_from} has a {model.config.vocab_size}-token vocabulary, not GPT-2's BPE; "
                            "sample from the checkpoint it was exported from (--init_from=resume --out_dir=...)")
        enc = tokenizer.gpt2_encoding()
        encode, decode = (lambda s: enc.encode(s, allowed_special={"<|endoftext|>"})), enc.decode
    model.eval().to(cfg.device)
    if cfg.compile:
        model.compile()  # in place: torch.compile(model) would leave model.generate eager
    start = cfg.start
    if start.startswith("FILE:"):
        path = start[5:]
        if not os.path.isfile(path):
            raise UserError(f"prompt file {path!r} not found")
        with open(path, encoding="utf-8") as f:
            start = f.read()
    ids = encode(start)
    if not ids:
        raise UserError("the prompt is empty; give --start=TEXT")
    x = torch.tensor(ids, dtype=torch.long, device=cfg.device)[None, ...]
    ctx = autocast(cfg, device_type)
    with torch.no_grad(), ctx:
        for _ in range(cfg.num_samples):
            y = model.generate(x, cfg.max_new_tokens, temperature=cfg.temperature, top_k=cfg.top_k)
            print(decode(y[0].tolist()))
            print("---------------")


if __name__ == "__main__":
    run_main(main)
