"""The configurator: nanoGPT's usage without its failure modes."""

import pytest

from configurator import configure
from training.errors import UserError, exit_status

DEFAULTS = dict(learning_rate=6e-4, max_iters=100, compile=True, dataset="openwebtext", wandb_run_name=None,
                betas=(0.9, 0.95))


def test_flags_and_files_apply_left_to_right(tmp_path):
    f = tmp_path / "c.py"
    f.write_text("import math\nmax_iters = 5\n_private = 3\nlearning_rate = 1e-3 * math.sqrt(4)\n")
    cfg = configure(DEFAULTS, ["--max_iters=7", str(f), "--compile=False"])
    assert cfg == {**DEFAULTS, "max_iters": 5, "learning_rate": 2e-3, "compile": False}


def test_int_accepted_for_float_and_none_default_overridable():
    cfg = configure(DEFAULTS, ["--learning_rate=1", "--wandb_run_name=run-1"])
    assert cfg["learning_rate"] == 1.0 and isinstance(cfg["learning_rate"], float)
    assert cfg["wandb_run_name"] == "run-1"
    assert configure(DEFAULTS, ["--wandb_run_name=3"])["wandb_run_name"] == 3


def test_value_may_contain_equals_and_bare_strings():
    assert configure(DEFAULTS, ["--dataset=a=b"])["dataset"] == "a=b"
    assert configure(DEFAULTS, ["--dataset='quoted'"])["dataset"] == "quoted"
    assert configure(DEFAULTS, ["--betas=(0.8, 0.9)"])["betas"] == (0.8, 0.9)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--learning_rat=1e-3"], "unknown config key 'learning_rat' in flag '--learning_rat=1e-3'; did you mean "
                                  "'learning_rate'?"),
        (["--max_iters=1.5"], "max_iters=1.5 in flag '--max_iters=1.5' has type float; expected int"),
        (["--max_iters=lots"], "cannot parse the value in '--max_iters=lots'; expected a int literal"),
        (["--compile=1"], "compile=1 in flag '--compile=1' has type int; expected bool"),
        (["--max_iters=True"], "has type bool; expected int"),
        (["--max_iters"], "flag '--max_iters' has no value; write --max_iters=VALUE"),
        (["missing.py"], "config file 'missing.py' not found"),
    ],
)
def test_user_errors_are_one_line(argv, message):
    with pytest.raises(UserError) as e:
        configure(DEFAULTS, argv)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_user_error_is_printed_in_one_write(monkeypatch):
    """Ranks under torchrun share a stderr (unbuffered under PYTHONUNBUFFERED): a line written in pieces
    can have another rank's line land inside it."""
    writes = []
    monkeypatch.setattr("sys.stderr", type("Recorder", (), {"write": lambda self, s: writes.append(s),
                                                            "flush": lambda self: None})())
    def refused():
        raise UserError("out_dir='x' is in use by another run")
    assert exit_status(refused) == 1
    assert writes == ["error: out_dir='x' is in use by another run\n"]


def test_unknown_key_in_file(tmp_path):
    f = tmp_path / "c.py"
    f.write_text("max_iter = 5\n")
    with pytest.raises(UserError, match=r"unknown config key 'max_iter' in config file .*; did you mean 'max_iters'"):
        configure(DEFAULTS, [str(f)])


def test_syntax_error_in_file(tmp_path):
    f = tmp_path / "c.py"
    f.write_text("max_iters = 5\nlearning_rate = = 3\n")
    with pytest.raises(UserError, match=r"c.py line 2: syntax error"):
        configure(DEFAULTS, [str(f)])


def test_file_may_build_on_a_sibling(tmp_path):
    (tmp_path / "base.py").write_text("max_iters = 9\ndataset = 'x'\n")
    (tmp_path / "child.py").write_text("exec(open(__file__.replace('child', 'base')).read())\nmax_iters = 3\n")
    cfg = configure(DEFAULTS, [str(tmp_path / "child.py")])
    assert cfg["max_iters"] == 3 and cfg["dataset"] == "x"
