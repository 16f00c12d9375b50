"""
Run a repo script as `python script.py args` (or `python -m module args`) would, in a process forked
from a server that has imported torch once (multiprocessing's forkserver). The tests launch scripts
hundreds of times, and importing torch afresh was most of each short launch (about 3 s of CPU).

The child is a fresh process in everything a script can see: its own pid, signal handlers and exit
status, the environment and working directory it is given, sys.path and sys.argv as python sets
them, its own stdout and stderr (files, at the file-descriptor level, so C++ output is caught too),
and on exit the non-daemon threads joined and the atexit handlers run. Only the modules the server
imported (torch, numpy) are already loaded; no test sets an environment variable they read at import.
Scripts that start other processes (torchrun's workers, the sweep's runs) start real interpreters.
"""

import atexit
import functools
import json
import multiprocessing
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import threading
import types

SERVER = multiprocessing.get_context("forkserver")
SERVER.set_forkserver_preload(["torch", "numpy", "launch"])


@functools.cache
def clean_path():
    """sys.path of a fresh interpreter, without its first entry (the script's folder)."""
    out = subprocess.run([sys.executable, "-c", "import json, sys; print(json.dumps(sys.path[1:]))"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def exit_code(e):
    """The exit status python gives a SystemExit."""
    if e.code is None or isinstance(e.code, int):
        return e.code or 0
    print(e.code, file=sys.stderr)
    return 1


def child(args, cwd, env, path, out, err):
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, name in ((1, out), (2, err)):
        f = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(f, fd)
        os.close(f)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, errors="backslashreplace", closefd=False)
    code = 0
    try:
        if args[0] == "-m":
            sys.path[:] = [os.getcwd(), *path]
            sys.argv = list(args[1:])
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        else:
            script = os.path.abspath(args[0])  # python gives __file__ absolute and argv[0] as given
            sys.path[:] = [os.path.dirname(script), *path]
            sys.argv = list(args)
            main = sys.modules["__main__"] = types.ModuleType("__main__")
            main.__file__ = script
            with open(script, "rb") as f:
                compiled = compile(f.read(), script, "exec")
            exec(compiled, main.__dict__)
    except SystemExit as e:
        code = exit_code(e)
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    for thread in threading.enumerate():  # as the interpreter does at exit
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run(args, cwd, env, timeout):
    """subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
    timeout=timeout), forked from the server."""
    with tempfile.TemporaryDirectory() as tmp:
        out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
        process = SERVER.Process(target=child, args=(list(args), str(cwd), dict(env), clean_path(), out, err))
        # The child can run before start() has read its pid back from the server: an interrupt in that
        # gap would leave it running, unknown, holding the server's pipes. Interrupts wait until its
        # pid is known, then kill it below.
        unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            process.start()
            signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
            process.join(timeout)
            timed_out = process.exitcode is None
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
            if process.pid is not None and process.exitcode is None:  # past its timeout, or interrupted
                process.kill()
                process.join()
        if timed_out:
            raise subprocess.TimeoutExpired([sys.executable, *args], timeout)
        code = process.exitcode
        process.close()
        with open(out) as o, open(err) as e:
            return subprocess.CompletedProcess([sys.executable, *args], code, o.read(), e.read())
