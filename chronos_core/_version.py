"""The SDK's own version, read from the installed distribution."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("chronos-synapse")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
