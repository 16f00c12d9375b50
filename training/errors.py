"""
Mistakes a user can fix, reported as one line: every entry point ends with run_main(main), which
prints a UserError as `error: ...` on stderr and exits 1, with no traceback.
"""

import argparse
import sys


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit status 1, no traceback."""


def exit_status(fn, *args):
    """fn(*args)'s exit status (None is 0); a UserError is printed as one line on stderr and gives 1."""
    try:
        return fn(*args)
    except UserError as e:
        # one write: ranks under torchrun share a stderr, and print's two writes (text, then newline) on an
        # unbuffered stream let another rank's line land in the middle of this one
        sys.stderr.write(f"error: {e}\n")
        sys.stderr.flush()
        return 1


def run_main(main):
    """The entry points' last line: exit with main(argv)'s status."""
    sys.exit(exit_status(main, sys.argv[1:]))


class ArgumentParser(argparse.ArgumentParser):
    """argparse for the data scripts, with its mistakes reported as one UserError line."""

    def error(self, message):
        raise UserError(f"{message} (see --help)")
