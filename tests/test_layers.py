"""The code's layers, as README's "What is where" draws them: every module of the project belongs to
one layer, imports (at the top or inside a function) only modules of its own layer or of the layers
below it, and no chain of imports comes back to where it started. Read from the source with ast, so
an import that goes up a layer or closes a circle fails here before it runs anywhere."""

import ast

import pytest
from conftest import REPO

LAYERS = [
    ("errors and files", ["training.errors", "training.files"]),
    ("what a run is: the model, the settings, a run's folder, its tokens",
     ["model", "configurator", "training.settings", "training.rundir", "training.tokenizer"]),
    ("what a run runs on: the device, the processes, the batches, the sharding; the MLP analysis",
     ["training.devices", "training.processes", "training.batches", "training.sharding", "training.analysis"]),
    ("weights in and out: checkpoints, GPT-2s", ["training.checkpoint", "training.hf"]),
    ("a run's pieces: build, the schedule, a step, evaluation", ["training.loop"]),
    ("the experiment: statistics, evidence, figures, reports",
     ["experiment.stats", "experiment.evidence", "experiment.figures", "experiment.report"]),
    ("tools: the plan, the coordinate check, the GPU check", ["tools.plan", "tools.coord_check", "tools.gpu_check"]),
    ("commands", ["train", "sample", "bench", "sweep", "study", "data.*"]),
]


def modules():
    """{dotted name: path} of every Python module of the project (tests and configs aside)."""
    found = {}
    for folder in ("", "training/", "experiment/", "tools/", "data/", "data/*/"):
        for path in REPO.glob(f"{folder}*.py"):
            if path.name != "__init__.py":
                found[".".join(path.relative_to(REPO).with_suffix("").parts)] = path
    return found


def layer_of(name):
    for i, (_, members) in enumerate(LAYERS):
        if name in members or any(m.endswith(".*") and name.startswith(m[:-1]) for m in members):
            return i
    return None


def imports(path, known):
    """The project modules a file imports, wherever in it the import is."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:  # from training import loop (a module), or from training.loop import check
                out.add(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module)
    return {m for m in out if m in known}


MODULES = modules()
GRAPH = {name: imports(path, MODULES) for name, path in MODULES.items()}


def test_every_module_has_one_layer():
    assert [name for name in MODULES if layer_of(name) is None] == []
    listed = [m for _, members in LAYERS for m in members if not m.endswith(".*")]
    assert sorted(listed) == sorted(set(listed)) and set(listed) <= set(MODULES), "a layer lists a module twice "\
        "or one that does not exist"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_import_goes_up_a_layer(name):
    up = {m: LAYERS[layer_of(m)][0] for m in GRAPH[name] if layer_of(m) > layer_of(name)}
    assert not up, f"{name} ({LAYERS[layer_of(name)][0]}) imports from a layer above it: {up}"


def test_no_import_closes_a_circle():
    state, path = {}, []

    def visit(name):
        state[name] = "open"
        path.append(name)
        for dep in sorted(GRAPH[name]):
            if state.get(dep) == "open":
                raise AssertionError(f"an import circle: {' -> '.join(path[path.index(dep):] + [dep])}")
            if dep not in state:
                visit(dep)
        path.pop()
        state[name] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


def test_what_a_run_is_imports_none_of_the_training_code():
    """settings.py says what a run is: every other module may read it, and it reads only the names
    of a run's files and the error type."""
    assert GRAPH["training.settings"] <= {"training.rundir", "training.errors"}
    assert GRAPH["model"] == set()
