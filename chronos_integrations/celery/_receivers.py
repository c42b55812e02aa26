"""What every group of Celery signal receivers shares: connect and disconnect them together."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["SignalReceivers"]


class SignalReceivers:
    """A set of (signal, receiver) pairs, connected with strong references.

    `weak=False` because the receivers are bound methods of objects nobody else holds; a
    weak reference would let them be collected and the hooks silently vanish.
    """

    _receivers: tuple[tuple[Any, Callable[..., None]], ...] = ()

    def connect(self) -> None:
        """Connect every receiver."""
        for signal, receiver in self._receivers:
            signal.connect(receiver, weak=False)

    def disconnect(self) -> None:
        """Disconnect every receiver."""
        for signal, receiver in self._receivers:
            signal.disconnect(receiver)
