"""
Files written whole or not at all. Each is written to a temporary file beside its target, flushed,
fsynced and renamed over it, so a process killed midway leaves the previous file as it was; the
data scripts, checkpoints, run records and exports all write this way. No torch here: the data
scripts use it too.
"""

import json
import os
import shutil

TMP_SUFFIX = ".tmp"


def temporary(path):
    return f"{os.path.normpath(path)}.{os.getpid()}{TMP_SUFFIX}"


def atomic_writes(writers):
    """Call write(file) for each {path: write} on a temporary binary file beside path, then move
    them all into place: all of them or, if any write fails, none. Returns {path: write's result}."""
    tmps = {path: temporary(path) for path in writers}
    results = {}
    try:
        for path, write in writers.items():
            with open(tmps[path], "w+b") as f:
                results[path] = write(f)
                f.flush()
                os.fsync(f.fileno())
    except BaseException:
        for tmp in tmps.values():
            if os.path.exists(tmp):
                os.remove(tmp)
        raise
    for path, tmp in tmps.items():
        os.replace(tmp, path)
    return results


def atomic_write(path, write):
    return atomic_writes({path: write})[path]


def write_json(path, obj):
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2).encode()))


def write_bytes(path, data):
    atomic_write(path, lambda f: f.write(data))


def atomic_folder(path, write):
    """Call write(folder) on a temporary folder beside path, fsync what it wrote, then rename it to path."""
    tmp = temporary(path)
    try:
        write(tmp)
        for root, _, names in os.walk(tmp):
            for name in names:
                with open(os.path.join(root, name), "rb") as f:
                    os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def keep_copy(src, dst):
    """Make dst an independent copy of the finished file src: a second file, not a link to the same
    data, so that damage to one leaves the other whole."""
    with open(src, "rb") as source:
        atomic_write(dst, lambda f: shutil.copyfileobj(source, f, 2**24))


def remove_stale_temporaries(folder):
    """Delete temporary files a killed process left behind."""
    for name in os.listdir(folder):
        if name.endswith(TMP_SUFFIX):
            os.remove(os.path.join(folder, name))
