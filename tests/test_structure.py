"""The project's structure, where it carries facts: every file of a run's folder is named in one
module (rundir.py) and nowhere else in the code, and what only reads records (the sweep runner, the
reports, the study, the statistics) imports neither torch nor, for the statistics and the tables,
matplotlib."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

import rundir

NAMES = {rundir.CONFIG, rundir.METRICS, rundir.SUMMARY, rundir.ANALYSIS, rundir.HOST, rundir.LOG, rundir.CKPT,
         rundir.BEST, rundir.LOCK}
OTHER_MEANING = {("hf.py", "config.json")}  # a transformers model folder's config.json, not a run's
CODE = sorted(p for p in [*REPO.glob("*.py"), *REPO.glob("data/**/*.py")] if p.name != "rundir.py")


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
    assert imported(["sweep", "study", "report"]) == ["matplotlib"]
    assert imported(["stats", "evidence", "rundir", "settings"]) == []


def test_a_run_starts_without_the_statistics_or_fsdp():
    """Every train.py and sample.py start would pay seconds for scipy (the reports' statistics) and
    DTensor (FSDP's), which they need only for a dry run or under FSDP."""
    assert imported(["train", "sample", "bench"], ("scipy", "torch.distributed.tensor")) == []


def test_the_scripts_exist_as_the_readme_names_them():
    """README's table of files lists every Python module at the top level, and nothing else."""
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## What is where"):]
    table = table[:table.index("\n## ", 1)]
    named = {name for name in (Path(p).name for p in REPO.glob("*.py")) if f"`{name}`" in table}
    assert named == {p.name for p in REPO.glob("*.py")}


def test_every_module_is_installed_with_the_project():
    """pip install -e . makes the modules importable from data/'s scripts, so pyproject.toml must
    list every one of them."""
    tomllib = pytest.importorskip("tomllib")
    listed = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["py-modules"]
    assert sorted(listed) == sorted(p.stem for p in REPO.glob("*.py"))


def test_no_script_edits_sys_path():
    for path in CODE:
        assert "sys.path" not in path.read_text(), path
