"""
Train a GPT whose MLP activation is chosen by name.

One process:       python train.py config/train_shakespeare_char_cpu.py --activation=relu
One node, 8 GPUs:  torchrun --standalone --nproc_per_node=8 train.py config/gpt2_xl_gelu.py
CPU DDP (tests):   torchrun --standalone --nproc_per_node=2 train.py config/... --device=cpu
Plan only:         python train.py config/gpt2_xl_gelu.py --dry_run=True

The settings and their defaults are in training/settings.py; training/loop.py's check() runs every
check before anything is read or written. This file is the story of a run, read from the top: main()
takes the settings as given and decides the device; train() builds or resumes the model, then
evaluates and saves, steps, logs and stops on a signal until max_iters, and writes the summary.
Batches and dropout masks are functions of (seed, iteration, micro-step) alone (training/batches.py),
so N ranks with A accumulation steps see exactly what 1 rank sees with N*A, a resumed run sees what
it would have seen, and a checkpoint holds no random-number state: the iteration number is the whole
data position.
"""

import json
import math
import os
import sys
import time
from contextlib import ExitStack
from types import SimpleNamespace

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from configurator import configure
from model import GPT
from tools import plan
from training import analysis, checkpoint, rundir, settings, sharding, tokenizer
from training.batches import Batches, tokens_per_iter
from training.devices import (
    attention_kernels,
    attention_order,
    autocast,
    compile_works,
    peak_memory_gib,
    resolve_device,
)
from training.errors import UserError, exit_status, run_main
from training.loop import NonFinite, Step, build, check, compiled, evaluate, get_lr, planned_config, whole_split_loss
from training.processes import StopRequest, all_ranks, on_rank0, setup_distributed
from training.settings import DEFAULTS


def main(argv):
    cfg = SimpleNamespace(**configure(DEFAULTS, argv, __doc__, [settings.__file__, __file__]))  # kept as given
    check(cfg)
    if cfg.dry_run:  # the plan, from the settings alone (a laptop plans a GPU run)
        if int(os.environ.get("RANK", 0)) == 0:
            plan.plan(cfg, planned_config(cfg), int(os.environ.get("WORLD_SIZE", 1)))
        return 0
    device = resolve_device(cfg)  # what the code decides: the device, its dtype
    ranks = setup_distributed(cfg, device)
    if not ranks.ddp:
        return start(cfg, device, ranks)
    try:
        code = exit_status(start, cfg, device, ranks)
    finally:
        dist.destroy_process_group()
    # DDP keeps its process group alive past destroy_process_group, and a gloo worker thread that
    # drops its last tensor while the interpreter shuts down aborts the process (SIGABRT) after a
    # finished run. Everything is written and closed by now, so leave without that shutdown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def start(cfg, device, ranks):
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if cfg.eval_only:
        return evaluate_only(cfg, device, ranks)
    # One run per out_dir: rank 0 holds its lock from before anything is read until the run ends.
    with ExitStack() as held:
        on_rank0(ranks, lambda: held.enter_context(rundir.Lock(cfg.out_dir)), f"take out_dir={cfg.out_dir!r}")
        held.enter_context(attention_kernels(cfg.sdpa_backend, device))
        return train(cfg, device, ranks)


def train(cfg, device, ranks):
    if cfg.init_from not in ("resume", "auto") and os.path.exists(rundir.path(cfg.out_dir, rundir.CKPT)):
        raise UserError(f"out_dir={cfg.out_dir!r} already holds a run ({rundir.CKPT}); continue it with "
                        "--init_from=resume (or auto), or start this one in another out_dir")
    run = build(cfg, device)
    raw, begin = run.model, run.start
    batches = Batches(cfg.dataset, cfg.batch_size, cfg.block_size, device.name, raw.config.vocab_size)
    compiling = cfg.compile and compile_works(device.name)
    model = eval_model = compiled(raw, cfg, compiling)
    if ranks.ddp and not cfg.fsdp:
        model = DDP(model, device_ids=[device.name] if device.type == "cuda" else None, gradient_as_bucket_view=True)
    ctx = autocast(device)
    # what the code decided, beside the settings as given (summary.json and wandb record both)
    order = attention_order(cfg.sdpa_backend, device)
    decided = dict(device=device.name, dtype=device.dtype, init_from=run.init_from, compile=compiling,
                   fused_loss=raw.fused_loss, attention_first=order[0].name if order else None,
                   model=vars(raw.config))
    records = on_rank0(ranks, lambda: rundir.Records(cfg, begin, decided), "write the run's records")
    begin.evaluated = begin.evaluated and all_ranks(ranks, records.evaluated if ranks.master else True)
    if ranks.master:
        say_how_it_starts(cfg, device, run, batches, records)
    stop, step = StopRequest(), Step(model, run.optimizer, run.scaler, batches, cfg, ranks, ctx)
    checkpoints = checkpoint.Checkpoints(cfg, ranks, raw, run.optimizer, run.scaler, begin)
    nonfinite = NonFinite(cfg.nonfinite, device.name)
    throughput, peak = Throughput(tokens_per_iter(cfg)), plan.datasheet_peak_flops(device.name)
    it = begin.iter
    while True:
        lr = get_lr(it, cfg)  # the iteration's one schedule computation: the step's, and what is logged
        if (it % cfg.eval_interval == 0 or it == cfg.max_iters) and not (begin.evaluated and it == begin.iter):
            nonfinite.check(checkpoints)  # before anything is evaluated or saved
            losses = agreed(evaluate(eval_model, batches, cfg.eval_iters, ctx), ranks)  # every rank, same batches
            if not all(map(math.isfinite, losses.values())):  # weights no update can bring back
                raise UserError(f"non-finite evaluation loss at iteration {it} ({losses['train']}, {losses['val']}); "
                                f"nothing saved; last good checkpoint: {checkpoints.where()}; lower learning_rate")
            row = dict(iter=it, train_loss=losses["train"], val_loss=losses["val"], lr=lr)
            if it in cfg.score_iters:  # every rank: a sharded model's forward is a collective
                row["full_val_loss"] = whole_split_loss(raw, batches, "val", ctx)[0]
            if ranks.master:
                print(f"step {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
                      + (f", whole val split {row['full_val_loss']:.4f}" if "full_val_loss" in row else ""))
                records.log(dict(row, wall_s=round(begin.wall(), 3)))
            checkpoints.evaluated(it, losses["val"])
            throughput.pause()
        if it >= cfg.max_iters:
            break

        loss, norm, skipped = step(it, lr)
        nonfinite.add(skipped, it)
        throughput.step()

        if it % cfg.log_interval == 0 or it == cfg.max_iters - 1:
            if ranks.ddp:  # the iteration's loss over all ranks (gloo has no AVG)
                dist.all_reduce(loss)
                loss /= ranks.world_size
            lossf = loss.item()  # the host-device sync of this iteration
            nonfinite.check(checkpoints)
            dt = throughput.window()
            if ranks.master:
                tokens_per_s = tokens_per_iter(cfg) / dt
                mfu = f", mfu {100 * raw.estimate_mfu(tokens_per_s, peak, ranks.world_size):.1f}%" if peak else ""
                print(f"iter {it}: loss {lossf:.4f}, lr {lr:.3e}, {dt * 1000:.1f} ms/iter, "
                      f"{tokens_per_s:,.0f} tokens/s{mfu}")
                records.log(dict(iter=it, loss=lossf, lr=lr, grad_norm=norm.item(), ms_per_iter=round(dt * 1000, 3),
                                 tokens_per_s=round(tokens_per_s, 1), wall_s=round(begin.wall(), 3)))
        it += 1

        if stop.agreed(ranks):
            nonfinite.check(checkpoints)
            path = checkpoints.save(it, False)
            if ranks.master:
                print(f"stopped by signal {stop.signum} after iteration {it - 1}; saved {path}; "
                      "continue with --init_from=resume (or auto)")
                records.close()
            return 128 + stop.signum

    finish(cfg, device, ranks, run, batches, records, throughput, ctx, decided)
    return 0


def agreed(losses, ranks):
    """The ranks' evaluation losses averaged, so that every rank decides alike what to save (FSDP's
    saves are collectives), and any difference in what the ranks evaluated shows in what is logged."""
    if not ranks.ddp:
        return losses
    total = torch.tensor([losses["train"], losses["val"]], dtype=torch.float64)
    dist.all_reduce(total, group=ranks.host)
    return dict(train=total[0].item() / ranks.world_size, val=total[1].item() / ranks.world_size)


def say_how_it_starts(cfg, device, run, batches, records):
    """The settings as given, what the code decided, the data's vocabulary and where the run starts."""
    print(json.dumps(vars(cfg), indent=2))
    print(f"decided: device {device.name}, dtype {device.dtype}, init_from {run.init_from}, activation "
          f"{run.model.config.activation}; parameters: {run.model.get_num_params():,}; tokens per iteration: "
          f"{tokens_per_iter(cfg):,}")
    tok, data = run.tokenizer, batches.folder
    if tok.chars is not None or tok.bpe_json is not None:
        print(f"vocabulary: {tok} ({os.path.join(data, tokenizer.VOCAB_FILE if tok.chars else tokenizer.BPE_FILE)})")
    else:
        print(f"vocabulary: {tok} ({data} has no meta.json)"
              + ("; its token ids are all below 256: if it holds characters, prepare it again to write its "
                 "meta.json" if batches.largest < 256 else ""))
    if records.damaged:
        print(f"{rundir.METRICS}: {records.damaged} line(s) that are not records (half written or damaged) dropped")
    if run.start.iter:
        print(f"resuming from {cfg.out_dir}/{cfg.checkpoint} at iteration {run.start.iter}"
              + "".join(f"; {k} {old!r} -> {new!r}" for k, (old, new) in run.start.changes.items()))


def evaluate_only(cfg, device, ranks):
    """--eval_only: print the losses of the checkpoint (or GPT-2) the settings name; write nothing."""
    run = build(cfg, device)
    batches = Batches(cfg.dataset, cfg.batch_size, cfg.block_size, device.name, run.model.config.vocab_size)
    model = compiled(run.model, cfg, cfg.compile and compile_works(device.name))
    losses = evaluate(model, batches, cfg.eval_iters, autocast(device))
    if ranks.master:
        print(f"step {run.start.iter}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f} "
              "(eval_only: nothing written)")
    return 0


def finish(cfg, device, ranks, run, batches, records, throughput, ctx, decided):
    """summary.json, the completion mark the sweep looks for, and analysis.json beside it. Every
    rank calls it (FSDP gathers the model for the analysis); rank 0 writes."""
    model = run.model
    if cfg.fsdp:  # the analysis folds and hooks MLPs: it runs on an unsharded copy on rank 0
        run.optimizer.zero_grad(set_to_none=True)  # room for the copy (the plan counts it so)
        run.optimizer.state.clear()
        state, _ = sharding.full_state(model, None, True, ranks.master)
        if not ranks.master:
            return
        model = GPT(model.config)
        model.load_state_dict(state)
        model.to(device.name)
    if not ranks.master:
        return
    final, best = records.evals[-1], min(records.evals, key=lambda r: r["val_loss"])
    summary = dict(
        complete=True, activation=model.config.activation, seed=cfg.seed, n_params=model.get_num_params(),
        best_val_loss=best["val_loss"], final_val_loss=final["val_loss"],
        iters=cfg.max_iters, tokens_seen=cfg.max_iters * tokens_per_iter(cfg), tokens_per_s=throughput.mean(),
        wall_s=round(run.start.wall(), 3), world_size=ranks.world_size, device=device.name, torch=torch.__version__,
        git=rundir.git_revision(), config=vars(cfg), train_tokens=len(batches.data["train"]),
        resumed_with=records.resumes,
        max_memory_gib=peak_memory_gib(device),  # the plan's estimate is to be checked against it
        decided=decided,
    )
    # what the MLPs do, measured now, while the model is at hand (reports read this file)
    result = analysis.analyse(model, list(batches.eval("val", analysis.BATCHES)))
    best_iter = best["iter"] if best is not final else None
    summary.update(whole_split_scores(cfg, model, batches, records, ctx, best_iter))
    rundir.write_json(cfg.out_dir, rundir.ANALYSIS, result)
    rundir.write_json(cfg.out_dir, rundir.SUMMARY, summary)
    print(f"best val loss {summary['best_val_loss']:.4f}; summary in {rundir.path(cfg.out_dir, rundir.SUMMARY)}")
    records.close()


def whole_split_scores(cfg, model, batches, records, ctx, best_iter):
    """The final model's loss on the whole validation split and, when an earlier evaluation was
    better (best_iter), best.pt's: the scores the sweeps' verdicts use. None for the best model
    when best.pt is not that evaluation's (the best was the initial model, which is not saved)."""
    final, tokens = whole_split_loss(model, batches, "val", ctx)
    best = final
    if best_iter is not None:
        path, state = rundir.path(cfg.out_dir, rundir.BEST), {}
        try:
            state = checkpoint.load(path) if os.path.exists(path) else {}
        except UserError as e:  # the run is done: say so and go on without best.pt's score
            print(f"no whole-split score for the best model: {e}")
        best = None
        if state.get("iter_num") == best_iter:
            model.load_state_dict(state["model"])
            best = whole_split_loss(model, batches, "val", ctx)[0]
    # the model as it was at each of score_iters, then at the end: the verdict along one run
    along = {str(e["iter"]): e["full_val_loss"] for e in records.evals if "full_val_loss" in e}
    return dict(best_full_val_loss=best, final_full_val_loss=final, full_val_tokens=tokens,
                full_val_loss_at={**along, str(cfg.max_iters): final})


class Throughput:
    """Milliseconds per iteration over each log window, evaluations left out; the run's mean
    tokens/s leaves out the first window too (compilation, warm-up)."""

    def __init__(self, tokens_per_iter):
        self.tokens_per_iter = tokens_per_iter
        self.t, self.steps, self.first = time.time(), 0, True
        self.tokens, self.seconds = 0, 0.0

    def step(self):
        self.steps += 1

    def pause(self):  # evaluation is not training time
        self.t, self.steps = time.time(), 0

    def window(self):
        """Seconds per iteration since the last window."""
        now = time.time()
        dt = (now - self.t) / self.steps
        if not self.first:
            self.tokens += self.tokens_per_iter * self.steps
            self.seconds += now - self.t
        self.first, self.t, self.steps = False, now, 0
        return dt

    def mean(self):
        return round(self.tokens / self.seconds, 1) if self.seconds else None


if __name__ == "__main__":
    run_main(main)
