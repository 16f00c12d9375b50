"""The verdicts in README.md and docs/results.md say what the committed reports compute. README's
answer table: each row's size, differences, intervals and verdict words are its report's, and its
headlines follow from them. docs/results.md: for each "The verdict at <size>" section,
the size is the judged models' parameter count, each row's scores, difference, interval and verdict
word are the report's, the headline on the claim follows from the report's verdict, and the rows of
the published-comparison table that cite these runs agree with them. (The reports themselves are
checked against the run records by test_sweep.py.)"""

import json
import re
import statistics

import pytest
from conftest import REPO

RESULTS = (REPO / "docs/results.md").read_text()  # where the verdicts are told in full
ANSWER = (REPO / "README.md").read_text()
SECTIONS = re.findall(r"\*\*The verdict at ([\d.]+)M\*\* \(\[`(results/[\w]+/report\.md)`\]", RESULTS)
NUM = r"[+−-]?\d+\.\d+"


def number(text):
    return float(text.replace("−", "-"))


def report_of(path):
    """The report's chosen-rate table rows and verdict lines: {activation: cells}, {(a, b): (word, mean, lo, hi)}."""
    text = (REPO / path).read_text()
    table = text.split("### Each activation at its chosen learning rate")[1].split("###")[0]
    rows = {cells[0].strip("`"): cells for line in table.splitlines() if line.startswith("| `")
            for cells in [[c.strip() for c in line.strip("|").split("|")]]}
    verdicts = {(a, b): (word, number(mean), number(lo), number(hi)) for a, b, word, mean, lo, hi in re.findall(
        rf"^- (\S+) vs (\S+): \*\*(.+?)\*\*: \S+ − \S+ = ({NUM}), 95% CI \[({NUM}), ({NUM})\]",
        text.split("### Verdicts")[1], re.M)}
    return rows, verdicts


def readme_rows(text):
    return {cells[0].strip("`"): cells for line in text.splitlines() if line.startswith("| `")
            for cells in [[c.strip() for c in line.strip("|").split("|")]]}


def test_every_verdict_section_is_checked():
    assert [size for size, _ in SECTIONS] == ["0.80", "4.7", "6.8"]


@pytest.mark.parametrize("size, path", SECTIONS, ids=[s for s, _ in SECTIONS])
def test_readme_verdict_is_the_reports(size, path):
    text = RESULTS[RESULTS.index(f"**The verdict at {size}M**"):]
    text = text[:text.index("\n\n**", 1)]  # up to the next bold-led paragraph
    rows, verdicts = report_of(path)
    mine = readme_rows(text)
    assert float(f"{int(rows['gelu'][8].replace(',', '')) / 1e6:.2g}") == float(size), "the size is the model's"
    for activation in ("gelu", "relu", "none"):
        rate, score = mine[activation][1:3]
        assert float(rate) == float(rows[activation][1]) and score == rows[activation][3]
    gelu_relu = verdicts["GELU", "ReLU"]
    # docs/results.md gives ReLU − GELU; the report's verdict line GELU − ReLU.
    delta, lo, hi = map(number, re.fullmatch(rf"({NUM}) \[({NUM}), ({NUM})\]", mine["relu"][3]).groups())
    assert (delta, lo, hi) == (-gelu_relu[1], -gelu_relu[3], -gelu_relu[2])
    assert mine["relu"][6] == f"**{gelu_relu[0]}**"
    none_gelu, none_relu = verdicts["'none'", "GELU"], verdicts["'none'", "ReLU"]
    assert mine["none"][3] == f"{none_gelu[1]:+.4f} [{none_gelu[2]:+.4f}, {none_gelu[3]:+.4f}]".replace("-", "−")
    assert mine["none"][6] == (f"**{none_gelu[0]}** (and ReLU: {none_relu[1]:+.4f} "
                               f"[{none_relu[2]:+.4f}, {none_relu[3]:+.4f}])").replace("-", "−")

    claim = re.search(r'\*\*"GELU trains better than ReLU": (.+?)\*\*', text, re.S)[1]
    if gelu_relu[0] == "GELU better":
        assert claim.startswith(f"supported at {size}M")
    else:
        assert claim.startswith(f"not supported at {size}M")
        if gelu_relu[0] == "ReLU better":
            assert "ReLU better" in claim
    collapse = re.search(r'\*\*"Without an activation the model underperforms": (.+?)\*\*', text)[1]
    holds = none_gelu[0] == "GELU better" and none_relu[0] == "ReLU better"
    assert collapse == ("supported" if holds else "not supported")


@pytest.mark.parametrize("size, path", SECTIONS, ids=[s for s, _ in SECTIONS])
def test_published_comparison_rows_cite_the_reports(size, path):
    rows, verdicts = report_of(path)
    judged = [cells for line in RESULTS.splitlines() if line.startswith("| ")
              for cells in [[c.strip() for c in line.strip("|").split("|")]]
              if "held-out seeds" in cells[0] and "steps" not in cells[0] and cells[1].startswith(f"{size}M")]
    assert len(judged) == 1, f"one row of the published comparison cites the {size}M verdict"
    cells = judged[0]
    relu, gelu = (re.fullmatch(r"(\d\.\d+) \((\d\.\d+)\)", c).groups() for c in cells[2:4])
    assert " ± ".join(relu) == rows["relu"][3] and " ± ".join(gelu) == rows["gelu"][3]
    gap, word = cells[4].split(": ", 1)
    mean = verdicts["GELU", "ReLU"][1]
    assert number(gap) == round(mean, len(gap.split(".")[1]))
    assert word == verdicts["GELU", "ReLU"][0]


def test_the_long_budget_section_is_its_reports_and_records():
    """The 4.7M verdict over 6,000 iterations: each row's verdict and difference are the report's (at an
    iteration, or for the best model), each score the mean ± std of the runs' records, and the comparison
    table's row cites the best model's."""
    path = "results/long_large_cpu"
    start = RESULTS.index("**The verdict at 4.7M over three times the budget** ([`" + path + "/report.md`]")
    text = RESULTS[start:RESULTS.index("\n\n**", start + 1)]
    report = (REPO / path / "report.md").read_text()
    line = rf"GELU vs ReLU: \*\*(.+?)\*\*: GELU − ReLU = ({NUM}), 95% CI \[({NUM}), ({NUM})\], .*? p = (\S+),"
    along = {it: m for it, *m in re.findall(rf"^- at iteration ([\d,]+):\n  - {line}", report, re.M)}
    best = re.search(line, report.split("### Verdicts")[1].split("###")[0]).groups()
    summaries = [json.loads(f.read_text()) for f in sorted((REPO / path / "runs").glob("*/summary.json"))]

    def spread(activation, iteration):
        values = [s["full_val_loss_at"][str(iteration)] if iteration else s["best_full_val_loss"]
                  for s in summaries if s["activation"] == activation]
        assert len(values) == 6
        return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"

    rows = [[c.strip() for c in row.strip("|").split("|")] for row in text.splitlines()
            if row.startswith("| at iteration") or row.startswith("| best model")]
    assert len(rows) == 4 and set(along) == {"2,000", "4,000", "6,000"}
    for cells in rows:
        iteration = cells[0].removeprefix("at iteration ") if cells[0].startswith("at") else None
        word, mean, lo, hi, p = along[iteration] if iteration else best
        assert cells[1:3] == [spread("gelu", iteration and iteration.replace(",", "")),
                              spread("relu", iteration and iteration.replace(",", ""))]
        # docs/results.md gives ReLU − GELU; the report GELU − ReLU.
        assert cells[3] == f"{-number(mean):+.4f} [{-number(hi):+.4f}, {-number(lo):+.4f}]".replace("-", "−")
        assert float(cells[4]) == float(p) and cells[5] == f"**{word}**"
    survives = all(cells[5] == "**ReLU better**" for cells in rows)
    assert ("**ReLU's lead survives" in text) == survives, "the headline follows from every row's verdict"
    cited = [c for row in RESULTS.splitlines() if row.startswith("| same, 6,000 steps")
             for c in [[x.strip() for x in row.strip("|").split("|")]]]
    assert len(cited) == 1
    assert cited[0][2:4] == [spread(a, None).replace(" ± ", " (") + ")" for a in ("relu", "gelu")]
    assert cited[0][4] == f"{number(best[1]):+.4f}: {best[0]}"


def test_the_readme_answer_is_the_reports():
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in ANSWER.splitlines()
            if line.startswith("| [`") and "/report.md)" in line]
    assert len(rows) == 4
    claim, collapse = [], []
    for cells in rows:
        path = re.fullmatch(r"\[`\w+`\]\((results/\w+/report\.md)\)", cells[0])[1]
        table, verdicts = report_of(path)
        assert float(cells[1].rstrip("M")) == float(f"{int(table['gelu'][8].replace(',', '')) / 1e6:.2g}")
        word, mean, lo, hi = verdicts["GELU", "ReLU"]
        assert cells[3] == f"{-mean:+.4f} [{-hi:+.4f}, {-lo:+.4f}]".replace("-", "−") and cells[4] == f"**{word}**"
        claim.append(word)
        if ("'none'", "GELU") in verdicts:
            word, mean, lo, hi = verdicts["'none'", "GELU"]
            assert cells[5] == f"{mean:+.4f} [{lo:+.4f}, {hi:+.4f}]".replace("-", "−") and cells[6] == f"**{word}**"
            collapse.append(word)
        else:
            assert cells[5:] == ["", ""]
    said = re.search(r'\*\*"GELU trains better than ReLU": (.+?)\*\*', ANSWER)[1]
    assert said == ("supported" if "GELU better" in claim else "not supported")
    said = re.search(r'\*\*"Without an activation the model underperforms": (.+?)\*\*', ANSWER)[1]
    assert said == ("supported" if set(collapse) == {"GELU better"} else "not supported")
