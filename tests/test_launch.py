"""The tests' launcher (launch.py) against a real interpreter: a script forked from the torch-loaded
server sees the same argv, __file__, sys.path, working directory and environment, and gives the same
output (file-descriptor writes included), exit status, atexit and thread behaviour, and signal death;
and a script outlives neither its timeout nor an interrupted test run."""

import os
import signal
import subprocess
import sys
import time

import launch
import pytest

PROBE = '''
import atexit, json, os, signal, sys, threading, time
print(json.dumps(dict(argv=sys.argv, file=__file__, path0=sys.path[0], path=sys.path[1:], cwd=os.getcwd(),
                      probe=os.environ.get("PROBE"), name=__name__)))
os.write(2, b"written to fd 2\\n")
atexit.register(lambda: print("atexit ran"))
def late():
    time.sleep(0.2)
    print("thread finished")
threading.Thread(target=late).start()
mode = sys.argv[-1]
if mode == "exit3":
    sys.exit(3)
if mode == "message":
    sys.exit("a message")
if mode == "raise":
    raise ValueError("boom")
if mode == "signal":
    os.kill(os.getpid(), signal.SIGTERM)
'''


@pytest.fixture
def probe(tmp_path):
    (tmp_path / "probe.py").write_text(PROBE)
    return tmp_path


def both(args, cwd):
    env = {**os.environ, "PROBE": "given"}
    real = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    return real, launch.run(args, cwd, env, timeout=60)


@pytest.mark.parametrize("mode", ["ok", "exit3", "message", "signal"])
def test_a_forked_script_behaves_as_python_runs_it(probe, mode):
    real, forked = both(["probe.py", mode], probe)
    assert forked.returncode == real.returncode
    assert forked.stdout == real.stdout
    assert forked.stderr == real.stderr
    assert real.returncode == {"ok": 0, "exit3": 3, "message": 1, "signal": -15}[mode]


def test_a_module_runs_as_python_m_runs_it(probe):
    real, forked = both(["-m", "probe", "ok"], probe)
    assert (forked.returncode, forked.stdout, forked.stderr) == (real.returncode, real.stdout, real.stderr)


def test_an_uncaught_exception_prints_its_traceback_and_exits_1(probe):
    real, forked = both(["probe.py", "raise"], probe)
    assert forked.returncode == real.returncode == 1
    assert forked.stdout == real.stdout
    assert "Traceback" in forked.stderr and forked.stderr.splitlines()[-1] == real.stderr.splitlines()[-1]


def test_a_script_past_its_timeout_is_killed(tmp_path):
    (tmp_path / "slow.py").write_text("import time\ntime.sleep(60)\n")
    with pytest.raises(subprocess.TimeoutExpired):
        launch.run(["slow.py"], tmp_path, dict(os.environ), timeout=1)


def gone(pid):
    """Whether the process has exited (a zombie waiting for its parent counts)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_an_interrupted_test_run_kills_its_script(tmp_path):
    """Ctrl-C while a script runs: the script is killed, as subprocess.run kills its child."""
    (tmp_path / "slow.py").write_text("import os, time\nopen('pid', 'w').write(str(os.getpid()))\ntime.sleep(120)\n")
    # Python makes SIGINT a KeyboardInterrupt only where its parent did not ignore it, and a test
    # worker ignores it now and then (a library thread inside C's system() ignores SIGINT and SIGQUIT
    # process-wide): the run under test takes the handler a terminal's Python has, explicitly.
    code = ("import launch, os, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
            f"launch.run(['slow.py'], {str(tmp_path)!r}, dict(os.environ), 300)")
    outer = subprocess.Popen([sys.executable, "-c", code], cwd=os.path.dirname(launch.__file__),
                             stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (tmp_path / "pid").exists() or not (tmp_path / "pid").read_text():
        assert outer.poll() is None and time.time() < deadline, "the script did not start"
        time.sleep(0.05)
    pid = int((tmp_path / "pid").read_text())
    outer.send_signal(signal.SIGINT)
    _, err = outer.communicate(timeout=60)
    assert "KeyboardInterrupt" in err
    while not gone(pid):
        assert time.time() < deadline + 60, f"the script {pid} outlived the interrupted run"
        time.sleep(0.05)
