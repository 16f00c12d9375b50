"""
The report of a sweep, written from its runs' records alone (never the logs, never a checkpoint: it
needs no model, no GPU, and works on a fresh clone from the committed records). sweep.py calls
write(); regenerate with `python sweep.py SWEEPFILE --report_only=True`.

Writes results/NAME/report.md, runs.csv (raw per-run values), loss.png and, with a learning-rate
grid, rates.png. The comparison is paired: runs with the same seed share their initialisation and
batches, so an activation's difference from the reference is taken seed by seed (evidence.py).
"""

import csv
import io
import os
from collections import Counter

from experiment.evidence import (
    ALPHA,
    SUBSET,
    TUNED,
    WHOLE,
    analysed,
    at_iteration,
    by_activation,
    cells,
    choice,
    collapse_table,
    comparison_table,
    distinct,
    duration,
    hidden_table,
    load_records,
    rate_fit_table,
    rate_fits,
    score_of,
    scored_iterations,
    verdicts,
)
from experiment.figures import plot, plot_rates
from training import files, rundir
from training.errors import UserError, run_main


def write_csv(records, sweep, path):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    scores = ("best_val_loss", "final_val_loss", WHOLE, "final_full_val_loss")
    writer.writerow(["run", "activation", "seed", *sweep.grid, *scores, "n_params", "tokens_per_s", "wall_s"])
    for r in records:
        s = r.summary
        writer.writerow([r.run.name, r.run.activation, r.run.seed, *(r.run.axes[a] for a in sweep.grid),
                         *(s.get(k) for k in scores), s["n_params"], s["tokens_per_s"], s["wall_s"]])
    files.atomic_write(path, lambda f: f.write(out.getvalue().encode()))


def host_line(host):
    if host is None:
        return f"unknown (no {rundir.HOST})"
    gpus = sorted(set(host["gpus"]))
    gpu = f"{len(host['gpus'])} × {gpus[0]}; " if len(gpus) == 1 else "".join(f"{g}; " for g in gpus)
    return f"{gpu}{host['cpu']}, {host['cores']} cores"


def header(sweep, records, missing, command):
    hosts = Counter(host_line(r.host) for r in records)
    tokens = distinct(f"{r.summary['tokens_seen']:,}" for r in records)
    lines = [
        f"# Sweep `{sweep.name}`: MLP activations",
        "",
        f"Regenerate this report (and runs.csv, loss.png) from the run records: `{command}`",
        "",
        f"- runs: {len(records)} of {len(records) + len(missing)} complete"
        + (f"; not complete: {', '.join(missing)}" if missing else ""),
        f"- git revision of the runs: {distinct(r.summary['git'] for r in records)}",
        f"- torch: {distinct(r.summary['torch'] for r in records)}; device: "
        f"{distinct(r.summary['device'] for r in records)}; processes per run: "
        f"{distinct(r.summary['world_size'] for r in records)}",
        "- hardware: " + "; ".join(f"{h} ({n} runs)" for h, n in hosts.items()),
        f"- iterations per run: {distinct(r.summary['iters'] for r in records)}; tokens per run: {tokens}",
        f"- total wall time of the runs: {duration(sum(r.summary['wall_s'] for r in records))} "
        "(sum over runs; runs side by side overlap)",
    ]
    passes = [r.summary["tokens_seen"] / r.summary["train_tokens"] for r in records if r.summary.get("train_tokens")]
    if passes:
        lines.append(f"- passes over the training text per run: {min(passes):.1f}"
                     + (f" to {max(passes):.1f}" if max(passes) > min(passes) + 0.05 else "")
                     + " (tokens seen / tokens in train.bin; past 1, runs see text again)")
    unanalysed = [r.run.name for r in records if r.analysis is None]
    if unanalysed:
        lines.append(f"- no {rundir.ANALYSIS} (hidden units, collapse check) for {len(unanalysed)} of {len(records)} "
                     f"runs, left out of those tables: {', '.join(unanalysed)}")
    lines += ["", *score_note(records), "",
              "Every activation runs with the same seeds, and a seed fixes the initialisation and the batches, so "
              f"differences from the reference (`{sweep.reference}`) are paired by seed and tested with a "
              "two-sided paired t-test; 95% intervals use Student's t. Raw per-run values: runs.csv."]
    return lines


def score_note(records):
    """What a run's score is, and how far the periodic evaluation's subset was from it."""
    config = records[0].summary["config"]
    subset = f"{config['eval_iters'] * config['batch_size'] * config['block_size']:,} tokens"
    if score_of(records) == SUBSET:
        return [f"A run's score is its best validation loss on the periodic evaluation's fixed subset ({subset}, "
                "the same for every run); lower is better. These records predate the whole-split score."]
    gaps = [r.subset - r.best for r in records]
    tokens = distinct(f"{r.summary['full_val_tokens']:,}" for r in records)
    return [f"A run's score is the loss of its best model (the periodic evaluation's choice, best.pt) on the whole "
            f"validation split, every token once ({tokens} tokens), measured when the run ended; lower is better. "
            f"The curves and 'best at iteration' use the periodic evaluation on a fixed subset ({subset}): its best "
            f"val loss minus the whole split's was {sum(gaps) / len(gaps):+.4f} on average, from {min(gaps):+.4f} "
            f"to {max(gaps):+.4f} over runs, an error every run shares in part, which no seed interval shows."]


def cell_title(key, sweep):
    if not key:
        return "Results"
    parts = []
    for axis, value in key:
        bundle = sweep.grid[axis]
        keys = f" ({', '.join(f'{k}={v}' for k, v in bundle[value].items())})" if isinstance(bundle, dict) else ""
        parts.append(f"{axis}={value}{keys}")
    return ", ".join(parts)


def seeds_text(seeds):
    return ", ".join(map(str, seeds))


def choice_note(sweep, chosen):
    lines = []
    if not all(c.fixed for c in chosen.values()):
        lines.append(f"**Selection.** Each activation's learning rate is the one of lowest mean score over seeds "
                     f"{seeds_text(sweep.seeds)}, which ran at every rate of the grid (the tables above).")
    lines += [f"`{a}` runs at {c.rate:g}, a rate fixed before this sweep (its sweep file says where it comes "
              "from), not chosen here." for a, c in chosen.items() if c.fixed]
    if sweep.heldout_seeds:
        lines.append(f"**Judging.** Seeds {seeds_text(sweep.heldout_seeds)} ran at the chosen rates only, after the "
                     "choice, and played no part in it: they alone make the table and the verdicts below, so no "
                     "verdict is flattered by the selection.")
    else:
        lines.append("**Judging.** The seeds that chose each rate also judge it, which flatters every activation "
                     "a little (most where seeds are few); held-out seeds (`heldout_seeds`) would not.")
    return " ".join(lines)


def cell_section(title, rs, sweep):
    """The markdown of one cell, its loss curves to plot (label -> runs), the choice of rates and
    fits to plot, and its verdicts. With a learning-rate grid, each activation is judged and plotted
    at its chosen rate."""
    lines, choices = ["", f"## {title}"], None
    if len(sweep.grid.get(TUNED, ())) > 1:
        chosen = choice(rs, sweep)
        selection = [r for c in chosen.values() for r in c.selection]
        for lr in sorted({r.run.axes[TUNED] for r in selection}):
            lines += ["", f"### Learning rate {lr:g} (seeds {seeds_text(sweep.seeds)})", "",
                      comparison_table(by_activation([r for r in selection if r.run.axes[TUNED] == lr], sweep),
                                       sweep.reference)]
        judged = {a: c for a, c in chosen.items() if c.runs}  # a sweep in progress may have none judged yet
        groups = {a: c.runs for a, c in judged.items()}
        curves = {f"{a}, lr {c.rate:g}": c.runs for a, c in judged.items()}
        unjudged = [f"`{a}` ({c.rate:g})" for a, c in chosen.items() if not c.runs]
        lines += ["", "### Each activation at its chosen learning rate", "", choice_note(sweep, chosen), "",
                  comparison_table(groups, sweep.reference, {a: c.rate for a, c in judged.items()}),
                  *(["", f"No judging run is complete yet at the chosen rate of {', '.join(unjudged)}."]
                    if unjudged else [])]
        if not all(c.fixed for c in chosen.values()):  # (with every rate fixed, there is no choice to show)
            fits = rate_fits(chosen, sweep.seeds)
            choices = (chosen, fits)
            lines += ["", "### The score against the learning rate", "",
                      "Where the chosen rate has a grid point on both sides, a parabola in log(rate) through the "
                      "mean scores at those three rates locates the optimum between grid points (a check that the "
                      "grid brackets it, not a replacement for measured runs); the same fit through each selection "
                      "seed's own scores shows how firmly (no minimum: those three points curve downward).", "",
                      rate_fit_table(chosen, fits), "", "![score against learning rate](rates.png)"]
        refusals = {a: f"the chosen rate of `{a}` ({c.rate:g}) is at the edge of the grid, so its best rate may lie "
                       "beyond it; widen the grid" for a, c in chosen.items() if c.edge}
    else:
        groups = curves = by_activation(rs, sweep)
        if TUNED in sweep.grid:
            lines += ["", f"Learning rate {sweep.grid[TUNED][0]:g}."]
        lines += ["", comparison_table(groups, sweep.reference)]
        refusals = {}
    found = verdicts(groups, sweep.margin, refusals)
    if found:
        lines += ["", "### Verdicts", "", verdict_rules(sweep.margin), "", *found]
    iterations = scored_iterations(groups)
    if found and iterations:
        lines += ["", "### The verdicts along the run", "",
                  f"The judged runs' models as they were at iterations {', '.join(f'{i:,}' for i in iterations)} "
                  "(at the end, the final model rather than the best), each scored on the whole validation split "
                  "when it was reached, with the same tests: how the differences moved over the budget. The "
                  "learning rates and the schedule are the whole run's, so an earlier iteration is not a run "
                  "of that length.", ""]
        for it in iterations:
            lines += [f"- at iteration {it:,}:", *(f"  {v}" for v in verdicts(at_iteration(groups, it), sweep.margin,
                                                                          refusals))]
    if any(r.analysis for r in rs):
        lines += mlp_sections(groups)
    return lines, curves, choices, found


def verdict_rules(margin):
    rule = (f"A verdict says **X better** only where the paired t-test gives p < {ALPHA}, **equivalent** only where "
            f"two one-sided tests put the 90% interval of the difference inside ±{margin:g}, a margin fixed in the "
            "sweep file before the runs, and **inconclusive** otherwise" if margin else
            f"A verdict says **X better** only where the paired t-test gives p < {ALPHA}, and **inconclusive** "
            "otherwise (no equivalence margin was fixed before these runs, so equivalence is not tested)")
    return rule + "; no verdict is given where a chosen rate is at the edge of the grid."


def mlp_sections(groups):
    lines = ["", "### MLP hidden units", "",
             "The activation's output act(x·W_fc) (for gated MLPs, the gate act(x·W)), from forward hooks on "
             "c_fc, on the first validation batches through each run's final model (analysis.json, written when "
             "the run ended); averaged over layers, then over runs. A unit never active gives ≤ 0 on every "
             "token (a dead unit, for ReLU-like activations).", "", hidden_table(groups)]
    if analysed(groups.get("none", [])):
        lines += ["", "### Linear collapse of 'none'", "",
                  "Each MLP of the final model folded into one n_embd × n_embd Linear (MLP.folded()); logits "
                  "of the folded and the unfolded model compared on a validation batch.", "",
                  collapse_table(groups["none"])]
    return lines


def write(sweep, runs, command):
    """Write report.md, runs.csv and loss.png; return the report's path and its verdict lines."""
    records, missing = load_records(runs)
    out_dir = os.path.join(sweep.out_dir, sweep.name)
    if not records:
        raise UserError(f"no complete runs under {os.path.join(out_dir, 'runs')}; run the sweep first")
    lines = header(sweep, records, missing, command)
    panels, rate_panels, printed = [], [], []
    groups_by_cell = cells(records, sweep)
    for key, rs in groups_by_cell.items():
        title = cell_title(key, sweep)
        section, curves, choices, found = cell_section(title, rs, sweep)
        lines += section
        panels.append((title, curves))
        if choices:
            rate_panels.append((title, *choices))
        printed += [f"[{title}] {v[2:]}" if len(groups_by_cell) > 1 else v[2:] for v in found]
    lines += ["", "## Loss curves", "", "Validation loss, mean over seeds with a min–max band; "
              "each activation at its best learning rate where the grid has one. The loss axis shows the last "
              "three quarters of training, where the curves differ.", "", "![val loss](loss.png)", ""]
    write_csv(records, sweep, os.path.join(out_dir, "runs.csv"))
    plot(panels, os.path.join(out_dir, "loss.png"))
    if rate_panels:
        plot_rates(rate_panels, os.path.join(out_dir, "rates.png"))
    path = os.path.join(out_dir, "report.md")
    files.atomic_write(path, lambda f: f.write("\n".join(lines).encode()))
    return path, printed


def main(argv):
    """This module is not run on its own: --help says how reports are written, anything else errs."""
    if argv in (["-h"], ["--help"]):
        print(__doc__.strip())
        return 0
    raise UserError("experiment/report.py is what sweep.py writes reports with; write or rewrite one with "
                    "python sweep.py SWEEPFILE --report_only=True")


if __name__ == "__main__":
    run_main(main)
