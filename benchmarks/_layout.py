"""A random heap layout for a benchmark's worker process, drawn from a seed.

What a forked RQ work horse writes, and so what each job costs, depends on where the worker's
objects lie, and that follows whatever the process imported and allocated before and beside
them. The same `ChronosWorker`, beside a bare worker, cost its horses some 13 page faults
per job more from one small script and some 40 more from another that differed from it by a
few lines of its own (three processes of each, `rq_faults.py`'s measure); with a random
layout per process (`perturb`), ten pairs of processes ranged from +1 to +43, mean +26. A
benchmark that runs each worker in one process measures one such draw: its own script's, not
an application's.

So the benchmarks that fork can give each worker process a layout of its own, as an
application's imports would (the practice of Mytkowicz et al., "Producing wrong data without
doing anything obviously wrong!", ASPLOS 2009, and of Stabilizer, Curtsinger and Berger,
ASPLOS 2013): before it imports RQ, the process imports a random subset of the standard
library and allocates a random number of objects of random sizes, keeping some of them. A
run over many processes then measures the mean over layouts, and its interval includes their
spread. Seed 0 leaves the layout alone.
"""

from __future__ import annotations

import importlib
import random

# Standard-library modules an application might have imported before its worker starts.
MODULES = (
    "argparse", "ast", "asyncio", "base64", "binascii", "bisect", "calendar", "cmath",
    "colorsys", "concurrent.futures", "configparser", "contextlib", "copy", "cProfile", "csv",
    "dataclasses", "decimal", "difflib", "dis", "doctest", "email.message", "email.mime.text",
    "enum", "fnmatch", "fractions", "ftplib", "functools", "getpass", "gettext", "glob",
    "graphlib", "gzip", "hashlib", "heapq", "hmac", "html.parser", "http.client",
    "http.cookies", "imaplib", "inspect", "ipaddress", "itertools", "json", "locale",
    "logging.handlers", "mimetypes", "numbers", "operator", "optparse", "pathlib", "pdb",
    "pickle", "plistlib", "pprint", "pstats", "queue", "sched", "secrets", "shlex", "smtplib",
    "socketserver", "sqlite3", "statistics", "string", "sysconfig", "tarfile", "tempfile",
    "textwrap", "timeit", "tokenize", "trace", "typing", "unittest", "urllib.parse",
    "urllib.request", "uuid", "wave", "weakref", "xml.dom.minidom", "xml.etree.ElementTree",
    "zipfile", "zoneinfo",
)  # fmt: skip
MAX_MODULES = 25
MAX_OBJECTS = 3_000

# The objects kept, for the process's life.
_kept: list[object] = []


def perturb(seed: int) -> str:
    """Give this process the layout of `seed` (0: none); a line saying what was done."""
    if not seed:
        return "layout: as the script leaves it"
    rng = random.Random(seed)
    modules = rng.sample(MODULES, rng.randrange(MAX_MODULES + 1))
    for name in modules:
        importlib.import_module(name)
    objects = rng.randrange(MAX_OBJECTS + 1)
    for _ in range(objects):
        if rng.random() < 0.5:
            obj: object = bytes(rng.randrange(1, 600))
        else:
            obj = tuple(range(rng.randrange(40)))
        if rng.random() < 0.5:
            _kept.append(obj)
    return f"layout {seed}: {len(modules)} modules imported, {objects} objects allocated"
