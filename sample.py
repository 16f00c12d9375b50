"""
Sample from a trained model (or a published GPT-2).

    python sample.py --out_dir=out-shakespeare-char-cpu --start="ROMEO:" --num_samples=3
    python sample.py --init_from=gpt2 --start=FILE:prompt.txt
"""

import math
import os
from types import SimpleNamespace

import torch

from configurator import configure
from training import checkpoint, files, hf, rundir, tokenizer
from training.batches import dataset_dir
from training.devices import autocast, compile_for_sampling, resolve_device
from training.errors import UserError, run_main

DEFAULTS = dict(
    init_from="resume",  # 'resume' (from out_dir), 'gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl', or a folder
    out_dir="out",  # the training run to sample from
    checkpoint=rundir.CKPT,  # or best.pt, the checkpoint with the best val loss
    start="\n",  # prompt text, or FILE:path to read it from a file
    num_samples=10,  # samples to print
    max_new_tokens=500,  # tokens generated per sample
    temperature=0.8,  # < 1 sharper, > 1 more random
    top_k=200,  # sample among the top_k most likely tokens
    seed=1337,  # fixes the samples
    device="auto",  # as in train.py: 'cuda', 'cpu', 'mps', or auto
    dtype="auto",  # as in train.py: 'float32', 'bfloat16', 'float16', or auto
    matmul_precision="high",  # as in train.py
    compile=False,  # torch.compile the model (pays off for long samples on a GPU)
    json="",  # also write the prompt and the samples to this file as JSON
)


def checkpoint_tokenizer(ckpt, model):
    """The tokenizer a checkpoint carries; for one written before checkpoints carried it (or by
    nanoGPT), its dataset folder's, as the folder is now."""
    if "tokenizer" in ckpt:
        return tokenizer.Tokenizer.from_state(ckpt["tokenizer"])
    dataset = ckpt.get("config", {}).get("dataset")
    if dataset is None or not os.path.isdir(dataset_dir(dataset)):
        raise UserError(f"the checkpoint carries no tokenizer, and its dataset folder ({dataset!r}) is not here to "
                        "read one from; prepare that dataset again, or sample with a newer checkpoint")
    tok = tokenizer.for_dataset(dataset_dir(dataset))
    if not tok.fits(model.config.vocab_size):
        raise UserError(f"the checkpoint's model has a {model.config.vocab_size}-token vocabulary, but "
                        f"{dataset_dir(dataset)} is tokenized with {tok}; prepare the dataset it was trained on")
    return tok


def main(argv):
    cfg = SimpleNamespace(**configure(DEFAULTS, argv, __doc__, [__file__]))
    if not 0 < cfg.temperature < math.inf:
        raise UserError(f"temperature={cfg.temperature} must be > 0 and finite (e.g. 0.8)")
    for key, example in (("top_k", 200), ("num_samples", 3), ("max_new_tokens", 500)):
        if getattr(cfg, key) <= 0:
            raise UserError(f"{key}={getattr(cfg, key)} must be a positive integer (e.g. {example})")
    if not 0 <= cfg.seed < 2**63:
        raise UserError(f"seed={cfg.seed} must be >= 0 and below 2**63")
    hf.check_init_from(cfg.init_from, ("resume",))
    device = resolve_device(cfg)
    torch.manual_seed(cfg.seed)
    if cfg.init_from == "resume":
        ckpt = checkpoint.load(rundir.path(cfg.out_dir, cfg.checkpoint))
        model = checkpoint.build_model(ckpt)
        tok = checkpoint_tokenizer(ckpt, model)
    else:
        model, tok = hf.load_pretrained(cfg.init_from), tokenizer.Tokenizer()
        if model.config.vocab_size <= tokenizer.EOT:
            raise UserError(f"{cfg.init_from} has a {model.config.vocab_size}-token vocabulary, not GPT-2's BPE; "
                            "sample from the checkpoint it was exported from (--init_from=resume --out_dir=...)")
    model.eval().to(device.name)
    if cfg.compile:
        compile_for_sampling(model, device.name)
    start = cfg.start
    if start.startswith("FILE:"):
        path = start[5:]
        if not os.path.isfile(path):
            raise UserError(f"prompt file {path!r} not found")
        start = tokenizer.read_text(path)
    ids = tok.encode(start)
    if not ids:
        raise UserError("the prompt is empty; give --start=TEXT")
    x = torch.tensor(ids, dtype=torch.long, device=device.name)[None, ...]
    ctx = autocast(device)
    samples = []
    with torch.no_grad(), ctx:
        for _ in range(cfg.num_samples):
            y = model.generate(x, cfg.max_new_tokens, temperature=cfg.temperature, top_k=cfg.top_k)
            samples.append(tok.decode(y[0].tolist()))
            print(samples[-1])
            print("---------------")
    if cfg.json:
        files.write_json(cfg.json, dict(prompt=start, samples=samples, device=device.name, dtype=device.dtype))


if __name__ == "__main__":
    run_main(main)
