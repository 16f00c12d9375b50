"""
Config files and command-line overrides, nanoGPT style, without its failure modes:

    python train.py config/train_shakespeare_char_cpu.py --activation=relu --max_iters=500

Arguments are applied left to right. A config file is Python that assigns known keys; a flag is
--key=value with the value parsed by ast.literal_eval (a bare word is taken as a string where
the key holds a string). Only keys that exist in the defaults may be set, and each value must
have the default's type (an int is accepted for a float; a None default accepts anything).
Every mistake raises UserError, which the entry points print as one line.
"""

import ast
import difflib
import os
import re
import sys
import types

from training.errors import UserError


def configure(defaults, argv, doc="", sources=()):
    """Return a copy of defaults updated by the config files and --key=value flags in argv.
    -h/--help prints doc and every key with its default and meaning, read from the DEFAULTS blocks
    of the source files (the comment beside each key, under its '# group' heading), and exits."""
    if "-h" in argv or "--help" in argv:
        print(describe(defaults, doc, sources))
        sys.exit(0)
    config = dict(defaults)
    for arg in argv:
        if arg.startswith("--"):
            key, eq, text = arg[2:].partition("=")
            if not eq:
                raise UserError(f"flag {arg!r} has no value; write --{key}=VALUE")
            check_key(key, defaults, f"flag {arg!r}")
            config[key] = coerce(key, parse(text, defaults[key], arg), defaults[key], f"flag {arg!r}")
        else:
            for key, value in read_config_file(arg).items():
                check_key(key, defaults, f"config file {arg}")
                config[key] = coerce(key, value, defaults[key], f"config file {arg}")
    return config


def check_key(key, defaults, where):
    if key not in defaults:
        close = difflib.get_close_matches(key, defaults, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(sorted(defaults))}"
        raise UserError(f"unknown config key {key!r} in {where}{hint}")


def parse(text, default, arg):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if default is None or isinstance(default, str):
            return text  # --dataset=shakespeare_char needs no quotes
        raise UserError(f"cannot parse the value in {arg!r}; expected a {type(default).__name__} literal") from None


def coerce(key, value, default, where):
    if default is None:
        return value
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(default, bool) and isinstance(value, bool)
    elif isinstance(default, float) and isinstance(value, int):
        return float(value)
    else:
        ok = type(value) is type(default)
    if not ok:
        raise UserError(
            f"{key}={value!r} in {where} has type {type(value).__name__}; "
            f"expected {type(default).__name__} like the default {default!r}"
        )
    return value


def read_config_file(path):
    if not os.path.isfile(path):
        raise UserError(f"config file {path!r} not found (flags are written --key=value)")
    try:
        with open(path, encoding="utf-8") as f:
            source = f.read()
    except UnicodeDecodeError as e:
        raise UserError(f"config file {path} is not UTF-8 text (bad byte at offset {e.start})") from None
    namespace = {"__file__": os.path.abspath(path)}  # lets a config build on a sibling file
    try:
        exec(compile(source, path, "exec"), namespace)
    except SyntaxError as e:
        raise UserError(f"config file {path} line {e.lineno}: syntax error: {e.msg}") from None
    except (Exception, SystemExit) as e:  # sys.exit() in a config file is a mistake too, not a way out
        raise UserError(f"config file {path} failed: {type(e).__name__}: {e}") from None
    # Imports and helper functions in a config file are not settings.
    return {
        k: v
        for k, v in namespace.items()
        if not k.startswith("_") and not isinstance(v, (types.ModuleType, types.FunctionType, type))
    }


def key_docs(path):
    """{key: (group, meaning)} from the `DEFAULTS = dict(...)` block of a source file."""
    docs, group, inside = {}, "", False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("DEFAULTS = dict("):
                inside = True
            elif inside and line.startswith(")"):
                break
            elif inside and line.strip().startswith("#"):
                group = line.strip().lstrip("#").strip()
            elif inside and (m := re.match(r"\s+(\w+)=.*?(?:#\s*(.*))?$", line)):
                docs[m[1]] = (group, m[2] or "")
    return docs


def command(path):
    """How the script at path is run from the repository's root: python train.py for a file there,
    python -m tools.gpu_check for a module of a package."""
    folder, name = os.path.split(os.path.abspath(path))
    if os.path.exists(os.path.join(folder, "__init__.py")):
        return f"python -m {os.path.basename(folder)}.{name.removesuffix('.py')}"
    return f"python {name}"


def describe(defaults, doc, sources):
    """The --help text: usage, the script's docstring, then each key as --key=DEFAULT and its meaning."""
    script = command(sources[-1]) if sources else "python SCRIPT"
    docs = {}
    for path in sources:
        docs.update(key_docs(path))
    lines = [f"usage: {script} [CONFIG_FILE ...] [--key=value ...]", "", doc.strip(), ""]
    flags = {key: f"--{key}={value!r}" for key, value in defaults.items()}
    width = min(40, max(map(len, flags.values())))
    group = None
    for key in defaults:
        heading, meaning = docs.get(key, ("", ""))
        if heading != group:
            group = heading
            lines += ["", f"{heading}:"] if heading else [""]
        lines.append(f"  {flags[key]:<{width}}  {meaning}".rstrip())
    return "\n".join(lines).replace("\n\n\n", "\n\n")
