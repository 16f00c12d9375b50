"""
How fast is a training step, sampling, and each activation? Times the code paths train.py runs.

Training step:      python bench.py config/train_shakespeare_char_cpu.py
  vs nanoGPT-style: python bench.py config/train_shakespeare_char_cpu.py --reference=True
Sampling:           python bench.py config/train_shakespeare_char_cpu.py --mode=sample --new_tokens=500
Speed levers:       python bench.py config/gpt2_124m_gelu.py --mode=levers --gradient_accumulation_steps=1
Every activation:   python bench.py config/train_shakespeare_char_cpu.py --mode=activations
Where time goes:    python bench.py config/train_shakespeare_char_cpu.py --mode=profile
Compiled graphs:    python bench.py config/train_shakespeare_char_cpu.py --mode=graphs --fused_loss=torch

Any train.py key works as it does there (--activation=relu, --batch_size=32, --compile=True,
--device=cuda, --dtype=bfloat16, --threads=1), the speed levers among them: --fused_loss (liger,
torch, off), --sdpa_backend (cudnn, flash, ...), --compile_mode, and a larger micro-batch for the
same tokens (--batch_size with --gradient_accumulation_steps; the dry run prints the largest that
fits), against nanoGPT's micro-batch with --reference_batch_size=12. Each figure is the median of `repeats` measurements
of `iters` steps, after `warmup` untimed steps (which pay for compilation, allocator growth and cold
caches), with min and max beside it: on a shared machine the spread shows how much to trust it.
When several things are compared, they take turns within each round of measurements, so a load
that comes and goes falls on all of them alike. CUDA runs asynchronously: every clock read waits
for the device first.
"""

import collections
import copy
import itertools
import math
import os
import statistics
import time
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from configurator import configure
from model import ACTIVATIONS, MLP, GPTConfig
from tools import plan
from training import files, loop, rundir, settings
from training.batches import Batches, dataset_dir, tokens_per_iter
from training.devices import (
    attention_kernels,
    attention_order,
    autocast,
    compile_for_sampling,
    compile_works,
    describe_device,
    resolve_device,
)
from training.errors import UserError, run_main
from training.processes import check_cuda_graphs

DEFAULTS = dict(
    settings.DEFAULTS,
    # benchmark
    mode="train",  # 'train' (one step), 'levers' (each speed lever), 'sample', 'activations', 'profile', 'graphs'
    warmup=10,  # untimed steps before measuring
    iters=20,  # steps per measurement
    repeats=5,  # measurements; their median is reported
    reference=False,  # train mode: also time a nanoGPT-style eager step on the same config
    reference_batch_size=0,  # the nanoGPT-style step's micro-batch (same tokens per iteration); 0: ours
    prompt_len=16,  # sample mode: random prompt tokens
    new_tokens=500,  # sample mode: tokens generated per measurement
    json="",  # also write what was measured to this file as JSON (tools/gpu_check.py reads it)
)
MODES = ("train", "levers", "sample", "activations", "profile", "graphs")
DEFAULT_THREADS = torch.get_num_threads()  # torch's own choice, before any --threads
SINGLE = SimpleNamespace(ddp=False, rank=0, world_size=1, master=True)  # one process, as train.py sees it
PEAK_SECONDS = (0.1, 0.5)  # how long the peak-measuring matmul should take
MAX_MATMUL = 32768  # 6 GiB of bf16 operands: the largest GPUs need it to reach 0.1 s
PROFILE_ROWS = 25


def validate(cfg):
    loop.check(cfg)
    if cfg.mode not in MODES:
        raise UserError(f"mode={cfg.mode!r} is not valid; choose one of {', '.join(MODES)}")
    for key in ("iters", "repeats", "prompt_len", "new_tokens"):
        if getattr(cfg, key) <= 0:
            raise UserError(f"{key}={getattr(cfg, key)} must be a positive integer")
    if cfg.warmup < 0:
        raise UserError(f"warmup={cfg.warmup} must be >= 0")
    if cfg.fsdp:
        raise UserError("fsdp=True shards a model over torchrun's ranks; bench.py times one process: leave fsdp off")
    if cfg.reference and cfg.mode not in ("train", "levers"):
        raise UserError(f"reference=True compares training steps; it needs mode='train', not {cfg.mode!r}")
    tokens = cfg.batch_size * cfg.gradient_accumulation_steps
    if cfg.reference_batch_size < 0 or cfg.reference_batch_size and tokens % cfg.reference_batch_size:
        raise UserError(f"reference_batch_size={cfg.reference_batch_size} must divide the {tokens} sequences of an "
                        "iteration (batch_size x gradient_accumulation_steps), or be 0 (ours)")


# ----------------------------------------------------------------------------- timing


def sync(device_type):
    """Wait for queued device work, so that a clock read covers it."""
    if device_type == "cuda":
        torch.cuda.synchronize()
    elif device_type == "mps":
        torch.mps.synchronize()


def timed(fn, device_type):
    sync(device_type)
    t0 = time.perf_counter()
    fn()
    sync(device_type)
    return time.perf_counter() - t0


def calls(step, n):
    return lambda: [step() for _ in range(n)]


def measure(entries, device_type, warmup, iters, repeats):
    """Seconds per call of each entry's step(), for entries of (name, step, threads).

    Every entry warms up first; then each of the `repeats` rounds times `iters` calls of each entry
    in turn. Returns name -> (first: seconds of the first warm-up call, which includes compiling,
    or None; times: seconds per call, one per round).
    """
    results = {name: SimpleNamespace(first=None, times=[]) for name, _, _ in entries}
    for name, step, threads in entries:
        torch.set_num_threads(threads or DEFAULT_THREADS)
        if warmup:
            results[name].first = timed(step, device_type)
            timed(calls(step, warmup - 1), device_type)
    for _ in range(repeats):
        for name, step, threads in entries:
            torch.set_num_threads(threads or DEFAULT_THREADS)
            results[name].times.append(timed(calls(step, iters), device_type) / iters)
    return results


def spread(times):
    """Median, min and max in milliseconds, as text."""
    ms = [1000 * t for t in times]
    return f"{statistics.median(ms):.2f} ms (min {min(ms):.2f}, max {max(ms):.2f})"


def matmul_seconds(n, dev, tries):
    """Best time of an n x n matmul in the run's dtype, after one untimed call (kernel choice)."""
    a, b = (torch.randn(n, n, device=dev.name, dtype=getattr(torch, dev.dtype)) for _ in range(2))
    a @ b
    return min(timed(lambda: a @ b, dev.type) for _ in range(tries))


def measure_peak(dev):
    """FLOP/s of a square matmul in the run's dtype, sized to take 0.1-0.5 s: what this device
    delivers in practice, a ceiling for MFU where no datasheet figure applies (any CPU).
    Returns (FLOP/s, matrix size, seconds)."""
    n = 256
    while (seconds := matmul_seconds(n, dev, 1)) < PEAK_SECONDS[0] and n < MAX_MATMUL:
        # aim at the middle of the range (time grows as n^3), but at most double n per probe, since
        # a tiny matmul's time is mostly overhead and would predict far too large a size
        target = sum(PEAK_SECONDS) / 2
        n = min(MAX_MATMUL, 256 * math.ceil(n * min(2.0, (target / seconds) ** (1 / 3)) / 256))
    seconds = min(seconds, matmul_seconds(n, dev, 2))
    return 2 * n**3 / seconds, n, seconds


def matmul_floor(model, cfg, dev):
    """step() doing the training step's matrix products alone, and how many there are.

    Every linear layer (lm_head included) costs three products per micro-batch: its forward, and in
    backward the input gradient and the weight gradient. They are the model's own arithmetic, so no
    step can be faster than these products run back to back; the time above them is what everything
    else costs (attention, activations, LayerNorm, the optimizer, and overhead). Shapes that repeat
    share one set of operands, so even the largest models need little memory for this.
    """
    dtype = getattr(torch, dev.dtype)  # autocast runs the products in the run's dtype
    M = cfg.batch_size * cfg.block_size
    shapes = collections.Counter((m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear))
    products = []
    for (K, N), count in shapes.items():
        x, w, dy = (torch.randn(*shape, device=dev.name, dtype=dtype) for shape in ((M, K), (N, K), (M, N)))
        products += [(x, w.t()), (dy, w), (dy.t(), x)] * count * cfg.gradient_accumulation_steps

    def step():
        for a, b in products:
            a @ b

    return step, len(products)


# ----------------------------------------------------------------------------- what train.py runs


def training_step(cfg, dev):
    """(model, step) where step() runs one training iteration as train.py does (loop.Step),
    reading the loss back every log_interval iterations."""
    run = loop.build(cfg, dev)
    batches = Batches(cfg.dataset, cfg.batch_size, cfg.block_size, dev.name, run.model.config.vocab_size)
    model = loop.compiled(run.model, cfg, dev.compile)
    train_step = loop.Step(model, run.optimizer, run.scaler, batches, cfg, SINGLE,
                               autocast(dev))
    iteration = itertools.count()

    def step():
        it = next(iteration)
        loss, _, _ = train_step(it, loop.get_lr(it, cfg))
        if it % cfg.log_interval == 0:
            loss.item()

    return run.model, step


def nanogpt_optimizer(model, cfg, device_type):
    """AdamW as nanoGPT's configure_optimizers makes it: the fused kernel on CUDA, and elsewhere
    torch's default for CPU tensors, one tensor at a time."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    kernel = dict(fused=True) if device_type == "cuda" else dict(foreach=False)
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2), **kernel)


def reference_step(cfg, dev, like):
    """step() running one iteration the way nanoGPT's train.py does, on a copy of the model `like`.

    The arithmetic is ours: the same model, batch shape, autocast dtype, clipping and AdamW
    hyperparameters. The habits are nanoGPT's: the dataset's memmap is opened again for every
    batch, each batch is stacked from per-row tensors, the next batch is fetched between forward
    and backward, AdamW is the fused kernel on CUDA and updates one tensor at a time elsewhere (what
    nanoGPT's configure_optimizers asks for), the loss is read back every iteration, and the model
    is compiled on CUDA (as nanoGPT's train.py and bench.py do by default) and eager elsewhere (as
    nanoGPT's README runs it on CPUs, --compile=False).
    """
    if cfg.reference_batch_size:  # nanoGPT's own micro-batch, for the same tokens per iteration
        sequences = cfg.batch_size * cfg.gradient_accumulation_steps
        cfg = SimpleNamespace(**{**vars(cfg), "batch_size": cfg.reference_batch_size,
                                 "gradient_accumulation_steps": sequences // cfg.reference_batch_size})
    model = copy.deepcopy(like).train()  # deepcopy keeps lm_head and wte tied
    model.fused_loss = None
    forward = torch.compile(model) if dev.type == "cuda" else model
    optimizer = nanogpt_optimizer(model, cfg, dev.type)
    scaler = torch.amp.GradScaler(dev.type, enabled=dev.dtype == "float16")
    ctx = autocast(dev)
    path = os.path.join(dataset_dir(cfg.dataset), "train.bin")
    T = cfg.block_size

    def get_batch():
        data = np.memmap(path, dtype=np.uint16, mode="r")
        starts = torch.randint(len(data) - T, (cfg.batch_size,))
        x = torch.stack([torch.from_numpy(data[i : i + T].astype(np.int64)) for i in starts])
        y = torch.stack([torch.from_numpy(data[i + 1 : i + 1 + T].astype(np.int64)) for i in starts])
        if dev.type == "cuda":
            return x.pin_memory().to(dev.name, non_blocking=True), y.pin_memory().to(dev.name, non_blocking=True)
        return x.to(dev.name), y.to(dev.name)

    batch = get_batch()
    iteration = itertools.count()

    def step():
        nonlocal batch
        lr = loop.get_lr(next(iteration), cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        for _ in range(cfg.gradient_accumulation_steps):
            with ctx:
                _, loss = forward(*batch)
                loss = loss / cfg.gradient_accumulation_steps
            batch = get_batch()
            scaler.scale(loss).backward()
        if cfg.grad_clip != 0.0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        loss.item()

    return step


# ----------------------------------------------------------------------------- modes


def bench_train(cfg, dev):
    raw, step = training_step(cfg, dev)
    entries = [("ours", step, cfg.threads)]
    if cfg.reference:
        # nanoGPT sets no thread count, so its step runs with torch's default
        entries.append(("nanoGPT-style", reference_step(cfg, dev, raw), 0))
    products, n_products = matmul_floor(raw, cfg, dev)
    results = measure(entries + [("floor", products, cfg.threads)], dev.type, cfg.warmup, cfg.iters, cfg.repeats)
    floor = statistics.median(results.pop("floor").times)
    torch.set_num_threads(cfg.threads or DEFAULT_THREADS)  # the peak of the run's own threads
    peak, n, seconds = measure_peak(dev)
    datasheet = plan.datasheet_peak_flops(dev.name)
    tokens = tokens_per_iter(cfg)
    print(f"model: {raw.get_num_params():,} parameters, activation {raw.config.activation}; "
          f"tokens per iteration: {tokens:,}; FLOPs per token: {raw.flops_per_token():.4g}")
    print(f"measured peak: {peak / 1e9:,.1f} GFLOP/s ({dev.dtype} matmul {n}x{n}, {1000 * seconds:.0f} ms)"
          + (f"; datasheet peak (bf16): {datasheet / 1e12:,.0f} TFLOP/s" if datasheet else ""))
    order = attention_order(cfg.sdpa_backend, dev)
    out = dict(fused_loss=raw.fused_loss, attention_first=order[0].name if order else None,
               compile_mode=cfg.compile_mode if dev.compile else None,
               floor_ms=1000 * floor, measured_peak_flops=peak, datasheet_peak_flops=datasheet)
    for name, r in results.items():
        tokens_per_s = tokens / statistics.median(r.times)
        mfu = f"MFU {100 * raw.estimate_mfu(tokens_per_s, peak):.1f}% of measured peak"
        if datasheet:
            mfu += f", {100 * raw.estimate_mfu(tokens_per_s, datasheet):.1f}% of datasheet"
        print(f"{name}: {spread(r.times)} per iteration, {tokens_per_s:,.0f} tokens/s, {mfu}")
        if r.first is not None:
            compiles = " (includes compiling)" if dev.compile and name == "ours" else ""
            print(f"{name}: first warm-up iteration {r.first:.2f} s{compiles}")
        out[name] = dict(ms=1000 * statistics.median(r.times), tokens_per_s=tokens_per_s,
                         mfu_datasheet=raw.estimate_mfu(tokens_per_s, datasheet) if datasheet else None)
    ours = statistics.median(results["ours"].times)
    print(f"matmul floor: {1000 * floor:.2f} ms per iteration, the step's {n_products} matrix products alone; "
          f"the rest of our step costs {1000 * (ours - floor):.2f} ms ({100 * (ours - floor) / ours:.0f}%)")
    if cfg.reference:
        theirs = statistics.median(results["nanoGPT-style"].times)
        threads = f"threads: ours {cfg.threads or DEFAULT_THREADS}, reference {DEFAULT_THREADS}"
        print(f"speedup over the nanoGPT-style step: {theirs / ours:.2f}x ({threads}; "
              f"{cfg.repeats} interleaved rounds of {cfg.iters} iterations)")
        print(f"most possible with these matmuls: {theirs / floor:.2f}x (a step with nothing but its matrix products)")
        out["speedup"] = theirs / ours
    return out


def lever_settings(cfg, dev):
    """The speed levers, each alone and all together, as settings: (name, cfg). The fused loss is
    Liger's on CUDA (torch's elsewhere, so that a CPU rehearsal runs a fused loss too)."""
    off = dict(fused_loss="off", sdpa_backend="torch", compile_mode="default")
    fused = "liger" if dev.type == "cuda" else "torch"
    runs = loop.fused_loss_kernel(fused, dev.type, say=lambda _: None)  # None: not installed here
    levers = [("none", off), (f"fused loss ({runs or fused + ' missing: plain'})", {**off, "fused_loss": fused}),
              ("cuDNN attention", {**off, "sdpa_backend": "cudnn"}),
              ("all", {**off, "fused_loss": fused, "sdpa_backend": "cudnn"})]
    if dev.type == "cuda" and dev.compile and cfg.gradient_accumulation_steps == 1:
        levers.append(("all + CUDA graphs", {**levers[-1][1], "compile_mode": "reduce-overhead"}))
    return [(name, SimpleNamespace(**{**vars(cfg), **keys, "init_from": "scratch"})) for name, keys in levers]


def bench_levers(cfg, dev):
    """Our training step with each speed lever alone and all together, against the nanoGPT-style
    step, interleaved in the same rounds: what each lever is worth, measured side by side."""
    entries, raw = [], None
    for name, one in lever_settings(cfg, dev):
        model, step = training_step(one, dev)
        raw = raw or model
        kernels = attention_kernels(one.sdpa_backend, dev)  # each step traced and run under its own order

        def run(step=step, kernels=kernels):
            with kernels:
                step()

        entries.append((name, run, cfg.threads))
    entries.append(("nanoGPT-style", reference_step(cfg, dev, raw), 0))
    results = measure(entries, dev.type, cfg.warmup, cfg.iters, cfg.repeats)
    theirs = statistics.median(results["nanoGPT-style"].times)
    out = {}
    for name, r in results.items():
        ms = statistics.median(r.times)
        print(f"{name}: {spread(r.times)} per iteration, {theirs / ms:.2f}x the nanoGPT-style step")
        out[name] = dict(ms=1000 * ms, speedup=theirs / ms)
    return dict(levers=out)


def nanogpt_generate(model, idx, max_new_tokens, top_k=None):
    """nanoGPT's generate: no cache, the whole context (cut to its last block_size tokens) through
    the model for every new token."""
    for _ in range(max_new_tokens):
        logits, _ = model(idx[:, -model.config.block_size :])
        logits = logits[:, -1, :]
        if top_k is not None:
            v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
            logits[logits < v[:, [-1]]] = -float("inf")
        idx = torch.cat((idx, torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)), dim=1)
    return idx


def bench_sample(cfg, dev):
    """tokens/s of model.generate with the KV cache (its decode step compiled, as sample.py does,
    when compile=True), without it, and of nanoGPT's generate, from the same prompt and seed."""
    run = loop.build(cfg, dev)
    eager = run.model.eval()
    model = copy.deepcopy(eager)
    if dev.compile:
        compile_for_sampling(model, dev.name)
    ctx = autocast(dev)
    rng = torch.Generator().manual_seed(cfg.seed)
    prompt = torch.randint(model.config.vocab_size, (1, cfg.prompt_len), generator=rng).to(dev.name)
    outputs = {}

    def generation(name, generate):
        def step():
            torch.manual_seed(cfg.seed)
            with torch.no_grad(), ctx:
                outputs[name] = generate()

        return name, step, cfg.threads

    source = {"resume": rundir.path(cfg.out_dir, cfg.checkpoint), "scratch": "random init"}.get(run.init_from,
                                                                                               run.init_from)
    print(f"model: {model.get_num_params():,} parameters ({source}), activation {model.config.activation}; "
          f"prompt {cfg.prompt_len} tokens, {cfg.new_tokens} new, block_size {model.config.block_size}; "
          f"KV cache {'compiled' if dev.compile else 'eager'}, the others eager")
    # a generation is already hundreds of forward passes: one untimed each, then one per round
    warmup = min(cfg.warmup, 1)
    print(f"protocol: {warmup} warm-up generation, then {cfg.repeats} rounds of 1")
    entries = [generation("KV cache", lambda: model.generate(prompt, cfg.new_tokens, use_cache=True)),
               generation("no cache", lambda: eager.generate(prompt, cfg.new_tokens, use_cache=False)),
               generation("nanoGPT generate", lambda: nanogpt_generate(eager, prompt, cfg.new_tokens))]
    results = measure(entries, dev.type, warmup, 1, cfg.repeats)
    rates = {name: cfg.new_tokens / statistics.median(r.times) for name, r in results.items()}
    for name, r in results.items():
        print(f"{name}: {rates[name]:,.1f} tokens/s ({spread(r.times)} per {cfg.new_tokens} tokens)")
    print(f"cache speedup: {rates['KV cache'] / rates['no cache']:.2f}x over no cache, "
          f"{rates['KV cache'] / rates['nanoGPT generate']:.2f}x over nanoGPT's generate")
    cached, uncached = outputs["KV cache"][0], outputs["no cache"][0]
    differ = (cached != uncached).nonzero()
    print("identical tokens with and without the cache: "
          + ("yes" if len(differ) == 0 else f"NO, first difference at position {differ[0].item()}"))
    return dict(tokens_per_s=rates, speedup_no_cache=rates["KV cache"] / rates["no cache"],
                speedup_nanogpt=rates["KV cache"] / rates["nanoGPT generate"], identical=len(differ) == 0,
                compiled=dev.compile)


def mlp_step(mlp, x, cfg, dev):
    """step(): forward and backward of one MLP, input gradient included as inside the model."""
    fn, ctx = loop.compiled(mlp, cfg, dev.compile), autocast(dev)

    def step():
        with ctx:
            y = fn(x)
        y.sum().backward()
        mlp.zero_grad(set_to_none=True)
        x.grad = None

    return step


def bench_mlp(cfg, dev):
    """Our registry MLP with gelu against a hard-coded fc -> GELU -> proj of the same shape."""
    mcfg = GPTConfig(n_embd=cfg.n_embd, n_head=cfg.n_head, bias=cfg.bias, activation="gelu")
    C = mcfg.n_embd
    torch.manual_seed(cfg.seed)
    ours = MLP(mcfg).to(dev.name)
    plain = nn.Sequential(nn.Linear(C, 4 * C, bias=cfg.bias), nn.GELU(), nn.Linear(4 * C, C, bias=cfg.bias))
    plain.to(dev.name)
    x = torch.randn(cfg.batch_size, cfg.block_size, C, device=dev.name, requires_grad=True)
    entries = [("registry", mlp_step(ours, x, cfg, dev), cfg.threads),
               ("nn.Sequential", mlp_step(plain, x, cfg, dev), cfg.threads)]
    r = measure(entries, dev.type, cfg.warmup, cfg.iters, cfg.repeats)
    ratio = statistics.median(r["registry"].times) / statistics.median(r["nn.Sequential"].times)
    print(f"MLP alone, forward+backward on {cfg.batch_size}x{cfg.block_size}x{C}: registry gelu "
          f"{spread(r['registry'].times)}, nn.Sequential(Linear, GELU, Linear) {spread(r['nn.Sequential'].times)}; "
          f"ratio {ratio:.3f}")
    return ratio


def bench_activations(cfg, dev):
    """The training step of every registry entry, relative to gelu. All the models are built first
    so that they take turns within each round; a model too large to hold ten times over is better
    timed alone, with --mode=train --activation=NAME."""
    entries, n_params = [], {}
    for name in ACTIVATIONS:
        one = SimpleNamespace(**{**vars(cfg), "activation": name, "init_from": "scratch"})  # a fresh model each
        raw, step = training_step(one, dev)
        entries.append((name, step, cfg.threads))
        n_params[name] = raw.get_num_params()
    results = measure(entries, dev.type, cfg.warmup, cfg.iters, cfg.repeats)
    tokens = tokens_per_iter(cfg)
    gelu = statistics.median(results["gelu"].times)
    print(f"{'activation':<11} {'gated':<5} {'parameters':>11}  {'ms/iter: median (min, max)':<32} "
          f"{'tokens/s':>10}  vs gelu")
    for name, activation in ACTIVATIONS.items():
        times = results[name].times
        median = statistics.median(times)
        print(f"{name:<11} {'yes' if activation.gated else 'no':<5} {n_params[name]:>11,}  {spread(times):<32} "
              f"{tokens / median:>10,.0f}  {median / gelu:.2f}x")
    return dict(ms={name: 1000 * statistics.median(r.times) for name, r in results.items()},
                mlp_ratio=bench_mlp(cfg, dev))


def bench_profile(cfg, dev):
    """Where our training step spends its time: torch.profiler around `iters` steps after the
    warm-up, the operators that took the most time of their own (compiled, each fused kernel by
    name)."""
    if dev.compile and dev.type == "cpu":
        import torch._inductor.config  # not at the top: it takes most of a second to import

        torch._inductor.config.cpp.enable_kernel_profile = True  # else a compiled graph is one opaque row
    _, step = training_step(cfg, dev)
    timed(calls(step, max(cfg.warmup, 1)), dev.type)  # at least one untimed step, to compile
    on_device = dev.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_device else [])
    with profile(activities=activities) as prof:
        timed(calls(step, cfg.iters), dev.type)
    print(f"profile: totals over {cfg.iters} iterations, by {'GPU' if on_device else 'CPU'} time of their own")
    sort = "self_device_time_total" if on_device else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=PROFILE_ROWS, max_name_column_width=90))
    return {}


def bench_graphs(cfg, dev):
    """How torch.compile splits the training forward and loss into graphs (torch._dynamo.explain on
    one micro-batch): the graph count and the graph breaks with their reasons. One graph and no
    break is what a compiled step wants; each break is a return to Python."""
    run = loop.build(cfg, dev)
    batches = Batches(cfg.dataset, cfg.batch_size, cfg.block_size, dev.name, run.model.config.vocab_size)
    _, x, y = next(batches.train(cfg.seed, 0, 1))
    with autocast(dev):
        explained = torch._dynamo.explain(run.model)(x, y)
    reasons = [str(getattr(b, "reason", b)) for b in explained.break_reasons]
    print(f"graphs: {explained.graph_count}, graph breaks: {explained.graph_break_count}"
          + "".join(f"\n  break: {reason}" for reason in reasons))
    return dict(graph_count=explained.graph_count, graph_break_count=explained.graph_break_count,
                break_reasons=reasons, fused_loss=run.model.fused_loss)


# ----------------------------------------------------------------------------- entry point


def load_average():
    # other work on the machine shows up in timings; print it beside them
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def main(argv):
    cfg = SimpleNamespace(**configure(DEFAULTS, argv, __doc__, [settings.__file__, __file__]))
    validate(cfg)
    dev = resolve_device(cfg)
    check_cuda_graphs(cfg, dev, 1)
    torch.set_num_threads(cfg.threads or DEFAULT_THREADS)
    dev.compile = cfg.compile and compile_works(dev.name)  # decided as train.py does: eager where compile fails
    print(f"bench {cfg.mode}: {dev.name} ({describe_device(dev.name)}), {torch.get_num_threads()} threads, "
          f"{dev.dtype}, compile={dev.compile}, torch {torch.__version__}; load average {load_average()}")
    if cfg.mode in ("train", "levers", "activations"):
        print(f"protocol: {cfg.warmup} warm-up iterations, then {cfg.repeats} rounds of {cfg.iters} iterations")
    modes = {"train": bench_train, "levers": bench_levers, "sample": bench_sample, "activations": bench_activations,
             "profile": bench_profile, "graphs": bench_graphs}
    order = attention_order(cfg.sdpa_backend, dev)
    loss = loop.fused_loss_kernel(cfg.fused_loss, dev.type, say=lambda _: None) or "plain"
    print(f"levers: fused_loss={cfg.fused_loss!r} -> {loss}; "
          f"sdpa_backend={cfg.sdpa_backend!r} -> {order[0].name + ' first' if order else 'torch order'}; "
          f"compile_mode={cfg.compile_mode!r}; batch {cfg.batch_size} x {cfg.gradient_accumulation_steps} micro-steps")
    with attention_kernels(cfg.sdpa_backend, dev):
        measured = modes[cfg.mode](cfg, dev)
    print(f"load average at the end: {load_average()}")
    if cfg.json:
        files.write_json(cfg.json, dict(mode=cfg.mode, device=dev.name, dtype=dev.dtype, torch=torch.__version__,
                                        device_name=describe_device(dev.name), **measured))
    return 0


if __name__ == "__main__":
    run_main(main)
