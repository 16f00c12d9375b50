"""The project's structure, where it carries facts: every file of a run's folder is named in one
module (rundir.py) and nowhere else in the code, and what only reads records (the sweep runner, the
reports, the study, the statistics) imports neither torch nor, for the statistics and the tables,
matplotlib."""

import ast
import os
import re
import subprocess
import sys

import pytest
from conftest import REPO

from training import rundir

NAMES = {rundir.CONFIG, rundir.METRICS, rundir.SUMMARY, rundir.ANALYSIS, rundir.HOST, rundir.LOG, rundir.CKPT,
         rundir.BEST, rundir.LOCK}
OTHER_MEANING = {("hf.py", "config.json")}  # a transformers model folder's config.json, not a run's
CODE = sorted(p for folder in ("", "training/", "experiment/", "tools/", "data/**/") for p in REPO.glob(f"{folder}*.py")
              if p.name != "rundir.py")


@pytest.mark.parametrize("path", CODE, ids=lambda p: str(p.relative_to(REPO)))
def test_run_folder_files_are_named_in_rundir_only(path):
    spelled = [(node.lineno, node.value) for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.Constant) and node.value in NAMES
               and (path.name, node.value) not in OTHER_MEANING]
    assert not spelled, f"{path.name} spells run-folder file names itself (use rundir's): {spelled}"


def imported(modules, watched=("torch", "matplotlib")):
    code = (f"import sys; import {', '.join(modules)}; "
            f"print(sorted(m for m in {watched!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return ast.literal_eval(out.stdout.strip())


def test_what_reads_records_imports_no_torch():
    assert imported(["sweep", "study", "experiment.report"]) == ["matplotlib"]
    assert imported(["experiment.stats", "experiment.evidence", "training.rundir", "training.settings"]) == []


def test_a_run_starts_without_the_statistics_or_fsdp():
    """Every train.py and sample.py start would pay seconds for scipy (the reports' statistics) and
    DTensor (FSDP's), which they need only for a dry run or under FSDP."""
    assert imported(["train", "sample", "bench"], ("scipy", "torch.distributed.tensor")) == []


def test_what_is_where_names_every_module():
    """README's "What is where" names every module of the project (a package's modules after the
    first of a row without their folder), and nothing that does not exist."""
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## What is where"):]
    table = table[:table.index("\n## ", 1)]
    named = set()
    for row in table.splitlines():
        if row.startswith("| `"):
            folder = ""
            for name in re.findall(r"`([\w/]+\.py)`", row.split("|")[1]):
                if "/" in name:
                    folder = name.rpartition("/")[0]
                named.add(name if "/" in name or not folder else f"{folder}/{name}")
    modules = {str(p.relative_to(REPO)) for folder in ("", "training/", "experiment/", "tools/")
               for p in REPO.glob(f"{folder}*.py") if p.name != "__init__.py"}
    assert named == modules


def test_every_link_of_the_documentation_resolves():
    """Relative links and images of README.md, docs/ and results/README.md point at files that
    exist, and each docs/ page is linked from the README."""
    pages = [REPO / "README.md", REPO / "results/README.md", *sorted((REPO / "docs").glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not target.startswith(("http://", "https://")):
                assert (page.parent / target).exists(), f"{page.relative_to(REPO)} links to missing {target}"
    readme = (REPO / "README.md").read_text()
    assert all(f"](docs/{p.name})" in readme for p in (REPO / "docs").glob("*.md"))


def test_the_scripts_run_from_a_plain_clone_without_installing_anything():
    """Nothing is pip-installed: a command runs as the README writes it, from the repository's root
    (python train.py, python -m tools.gpu_check) or, for the data scripts, from anywhere, the way
    nanoGPT's first command is typed."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for script in ("data/shakespeare_char/prepare.py", "data/prose/prepare.py", "data/prepare_text.py"):
        r = subprocess.run([sys.executable, str(REPO / script), "--help"], cwd="/", env=env, capture_output=True,
                           text=True)
        assert r.returncode == 0 and "usage" in r.stdout, (script, r.stderr)
    for command in (["train.py"], ["-m", "tools.gpu_check"], ["-m", "training.hf"]):
        r = subprocess.run([sys.executable, *command, "--help"], cwd=REPO, env=env, capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout.startswith("usage"), (command, r.stderr)
    out = subprocess.run([sys.executable, "-c", "import training.settings; print(training.settings.__file__)"],
                         cwd=REPO, env=env, capture_output=True, text=True, check=True).stdout
    assert out.startswith(str(REPO)), "the modules come from this clone, not from an installed copy"


def test_only_the_data_scripts_edit_sys_path():
    """They put the repository's root on it, one line each; nothing else needs to."""
    for path in CODE:
        lines = [line for line in path.read_text().splitlines() if "sys.path" in line and not line.startswith("#")]
        if path.is_relative_to(REPO / "data") and path.name != "__init__.py":
            assert len(lines) == 1 and lines[0].startswith("sys.path.insert(0, "), path
        else:
            assert lines == [], path
