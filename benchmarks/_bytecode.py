"""Chronos's packages compiled to bytecode before a benchmark starts its workers.

A wheel install leaves every module compiled (pip writes the `.pyc` files), and so does any
process that may write bytecode. A checkout run with `PYTHONDONTWRITEBYTECODE=1` has none:
each process then compiles Chronos's modules from source at import, and the compiler's
leftovers stay in its heap (some 2 MB in an RQ worker, against 0.4 MB imported from bytecode).
A forking worker pays for that on every job: a larger fork and exit, and its objects spread
over more pages for each horse to copy. The workers are measured as they run once installed,
so the benchmarks that fork compile first (`compileall` writes regardless of that setting).
"""

from __future__ import annotations

import compileall
import importlib.util

PACKAGES = ("chronos_core", "chronos_integrations")


def compile_chronos() -> str:
    """Compile Chronos's packages where they are imported from; a line for the report."""
    failed: list[str] = []
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        for location in (spec.submodule_search_locations or []) if spec else []:
            if not compileall.compile_dir(location, quiet=1):
                failed.append(location)
    if failed:
        return f"bytecode: could not compile {', '.join(failed)}: those modules compile at import"
    return "bytecode: Chronos's modules compiled, as installed from a wheel"
