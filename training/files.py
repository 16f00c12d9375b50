"""
Files written whole or not at all. Each is written to a temporary file beside its target, flushed,
fsynced and renamed over it, and the folder fsynced after the rename, so a process killed midway
leaves the previous file as it was and a power cut after the rename cannot leave an empty file; the
data scripts, checkpoints, run records and exports all write this way. A write that fails (a full
disk, a quota, a file-size limit) is one line saying which file, how much it needed and had, and
that the previous file is intact. No torch here: the data scripts use it too.
"""

import json
import os
import shutil

from training.errors import UserError

TMP_SUFFIX = ".tmp"


def temporary(path):
    return f"{os.path.normpath(path)}.{os.getpid()}{TMP_SUFFIX}"


def atomic_writes(writers, needs=None):
    """Call write(file) for each {path: write} on a temporary binary file beside path, then move
    them all into place: all of them or, if any write fails, none. Returns {path: write's result}.
    needs: {path: bytes it will take}, where the caller knows, for the message if space runs out."""
    tmps = {path: temporary(path) for path in writers}
    results, path = {}, None
    try:
        for path, write in writers.items():
            with open(tmps[path], "w+b") as f:
                results[path] = write(f)
                f.flush()
                os.fsync(f.fileno())
    except BaseException as e:
        written = os.path.getsize(tmps[path]) if os.path.exists(tmps[path]) else 0
        for tmp in tmps.values():
            if os.path.exists(tmp):
                os.remove(tmp)
        cause = os_error(e)
        if cause is None:
            raise
        raise UserError(failed_write(path, cause, written, (needs or {}).get(path))) from None
    for path, tmp in tmps.items():
        os.replace(tmp, path)
    for folder in {os.path.dirname(os.path.abspath(p)) for p in tmps}:
        sync_folder(folder)
    return results


def sync_folder(folder):
    """fsync a folder, so that the renames in it outlive a power cut (the files' data is synced before)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path, write, needs=None):
    return atomic_writes({path: write}, {path: needs})[path]


def os_error(e):
    """The OSError behind an exception (torch.save wraps it in a RuntimeError), or None."""
    while e is not None and not isinstance(e, OSError):
        e = e.__cause__ or e.__context__
    return e


def failed_write(path, error, written, needs):
    """One line on a write that failed: what, why, how much it needed and had, what is left."""
    reason = error.strerror or str(error) or type(error).__name__
    folder = os.path.dirname(os.path.abspath(path))
    free = shutil.disk_usage(folder).free if os.path.isdir(folder) else None
    size = f"it needs about {needs:,} bytes, " if needs else ""
    room = f"{size}{written:,} were written and {free:,} bytes are free there" if free is not None \
        else size.rstrip(", ")
    kept = f"the previous {os.path.basename(path)} is intact" if os.path.exists(path) else "nothing was written"
    return f"cannot write {path} ({reason}): {room}; {kept}; free some space (or raise the limit) and try again"


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
    sync_folder(os.path.dirname(os.path.abspath(path)))


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
