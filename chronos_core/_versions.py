"""Which version of the application ran, and a fingerprint of a job's code.

The app version comes from, in order: what the caller says, `CHRONOS_APP_VERSION` (read by
`ChronosSettings`, the only reader of the environment), or the installed distribution that
owns the program being run. Lookups against installed metadata are slow, so they are done
once per process.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import logging
import os
import sys
from collections.abc import Callable, Mapping
from functools import cache
from types import CodeType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chronos_core._config import ChronosSettings

__all__ = ["detect_app_version", "distribution_version", "signature_hash"]

logger = logging.getLogger("chronos_core.versions")

SIGNATURE_HASH_LENGTH = 16

# Programs that run other people's code: when one of them is `__main__`, its version says
# nothing about the application.
_LAUNCHERS = frozenset(
    {
        "chronos-synapse",
        "celery",
        "rq",
        "pytest",
        "gunicorn",
        "uvicorn",
        "hypercorn",
        "ipykernel",
        "ipython",
        "pip",
        "setuptools",
    }
)


def detect_app_version(
    explicit: str | None = None, *, settings: ChronosSettings | None = None
) -> str | None:
    """The application's version: `explicit`, else the settings', else the installed one.

    Without `settings`, the environment is read once per process through `ChronosSettings`.
    """
    if explicit:
        return explicit
    if settings is not None:
        return settings.app_version or _installed_app_version()
    return _configured_app_version() or _installed_app_version()


def distribution_version(module_name: str) -> str | None:
    """The version of the installed distribution that provides top-level `module_name`."""
    top_level = module_name.partition(".")[0]
    for dist_name in _packages_distributions().get(top_level, ()):
        version = _version_of(dist_name)
        if version:
            return version
    return None


@cache
def _configured_app_version() -> str | None:
    # Imported here: the settings bring pydantic, which a process that never builds a model
    # (an RQ worker) does not load.
    from chronos_core._config import ChronosSettings

    try:
        return ChronosSettings().app_version
    except Exception:  # a malformed unrelated setting must not stop version detection
        logger.debug("could not read Chronos settings for the app version", exc_info=True)
        return None


@cache
def _installed_app_version() -> str | None:
    try:
        for dist_name in _main_distributions():
            if _normalize(dist_name) in _LAUNCHERS:
                continue
            version = _version_of(dist_name)
            if version:
                return version
    except Exception:
        logger.debug("could not detect the application's version", exc_info=True)
    return None


def _main_distributions() -> list[str]:
    """Distributions that could own the running program, most specific first."""
    main = sys.modules.get("__main__")
    names: list[str] = []
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        # `python -m package.module`
        names.extend(_packages_distributions().get(spec.name.partition(".")[0], ()))
    main_file = getattr(main, "__file__", None)
    if isinstance(main_file, str):
        package = _top_level_package(main_file)
        if package:
            names.extend(_packages_distributions().get(package, ()))
        # A console script (`myapp-worker`): the distribution that declares it.
        script = os.path.basename(main_file)
        for entry_point in importlib.metadata.entry_points(group="console_scripts", name=script):
            if entry_point.dist is not None:
                names.append(entry_point.dist.name)
    return names


def _top_level_package(path: str) -> str | None:
    """For `proj/jobs/run.py` with `__init__.py` files up to `proj`, "proj"."""
    directory = os.path.dirname(os.path.abspath(path))
    package = None
    while os.path.isfile(os.path.join(directory, "__init__.py")):
        package = os.path.basename(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return package


@cache
def _packages_distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _version_of(dist_name: str) -> str | None:
    try:
        return importlib.metadata.version(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _normalize(dist_name: str) -> str:
    return dist_name.lower().replace("_", "-").replace(".", "-")


def _clear_caches() -> None:
    """Forget detected versions (for tests, and after the environment changed)."""
    _configured_app_version.cache_clear()
    _installed_app_version.cache_clear()
    _packages_distributions.cache_clear()


def signature_hash(func: Callable[..., Any]) -> str:
    """A short, process-independent fingerprint of a job's code: 16 hex digits.

    Made from the qualified name and the source text, or from the compiled code when the
    source is not available; it changes when the job's code changes.
    """
    target: Any = inspect.unwrap(func)
    target = getattr(target, "__func__", target)  # bound and class methods
    module = getattr(target, "__module__", None) or ""
    qualname = getattr(target, "__qualname__", None) or type(target).__qualname__
    digest = hashlib.sha256(f"{module}.{qualname}\n".encode())
    try:
        digest.update(inspect.getsource(target).encode("utf-8", "surrogatepass"))
    except (OSError, TypeError):
        code = getattr(target, "__code__", None)
        if code is None:
            # A callable object: fingerprint its class's __call__.
            code = getattr(vars(type(target)).get("__call__"), "__code__", None)
        if isinstance(code, CodeType):
            _hash_code(digest, code)
    return digest.hexdigest()[:SIGNATURE_HASH_LENGTH]


def _hash_code(digest: Any, code: CodeType) -> None:
    digest.update(code.co_code)
    digest.update(repr(code.co_names).encode())
    for const in code.co_consts:
        _hash_const(digest, const)


def _hash_const(digest: Any, const: object) -> None:
    # repr() of a code object includes its memory address, and a frozenset's order depends
    # on string hash randomization: both would make the hash differ between processes.
    if isinstance(const, CodeType):
        _hash_code(digest, const)
    elif isinstance(const, tuple):
        digest.update(b"(")
        for item in const:
            _hash_const(digest, item)
        digest.update(b")")
    elif isinstance(const, frozenset):
        digest.update(repr(sorted(repr(item) for item in const)).encode("utf-8", "surrogatepass"))
    else:
        digest.update(repr(const).encode("utf-8", "surrogatepass"))
