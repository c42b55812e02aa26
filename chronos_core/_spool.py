"""A directory of encoded batches waiting to be acknowledged by the server.

With a spool the exporter writes each batch to disk before sending it and deletes the file
only once the server has acknowledged it, so a process that dies (or a server that is down
for hours) loses nothing: the next process using the same directory sends what is left.

Each file is one request body. Its name carries the pid of the process that owns it; a
process takes over files whose owner is gone by renaming them (atomic), so two live
processes never send the same file.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_SPOOL_MAX_BYTES", "Spool", "SpoolEntry"]

DEFAULT_SPOOL_MAX_BYTES = 256 * 1024 * 1024
_SUFFIX = ".batch"
_counter = itertools.count()


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One spooled request body and how many events it holds."""

    path: Path
    events: int

    def read(self) -> bytes:
        """The encoded request body."""
        return self.path.read_bytes()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Spool:
    """Write-ahead storage for batches, safe to share between processes."""

    def __init__(self, directory: Path | str, *, max_bytes: int = DEFAULT_SPOOL_MAX_BYTES):
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.directory.mkdir(parents=True, exist_ok=True)

    def _name(self, events: int) -> str:
        # <time_ns>-<seq>-<events>-<pid>.batch: sorts oldest first, owner last.
        return f"{time.time_ns():020d}-{next(_counter):06d}-{events}-{os.getpid()}{_SUFFIX}"

    @staticmethod
    def _parse(path: Path) -> tuple[int, int] | None:
        """(events, owner pid) from a file name, or None if it is not ours to read."""
        parts = path.name.removesuffix(_SUFFIX).split("-")
        if len(parts) != 4 or not path.name.endswith(_SUFFIX):
            return None
        try:
            return int(parts[2]), int(parts[3])
        except ValueError:
            return None

    def size(self) -> int:
        """Bytes currently spooled."""
        total = 0
        for path in self.directory.glob(f"*{_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        return total

    def write(self, body: bytes, events: int) -> SpoolEntry | None:
        """Persist one request body; None if the spool is full."""
        if self.size() + len(body) > self.max_bytes:
            return None
        final = self.directory / self._name(events)
        temp = final.with_suffix(".tmp")
        with open(temp, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, final)
        return SpoolEntry(final, events)

    def pending(self) -> list[SpoolEntry]:
        """Files this process may send now, oldest first.

        Files of a dead process are taken over (renamed to our pid); files of another live
        process are left to it.
        """
        entries = []
        me = os.getpid()
        for path in sorted(self.directory.glob(f"*{_SUFFIX}")):
            parsed = self._parse(path)
            if parsed is None:
                continue
            events, owner = parsed
            if owner != me:
                if _pid_alive(owner):
                    continue
                stamp, seq = path.name.split("-")[:2]
                claimed = self.directory / f"{stamp}-{seq}-{events}-{me}{_SUFFIX}"
                try:
                    os.rename(path, claimed)
                except FileNotFoundError:
                    continue  # another process took it first
                path = claimed
            entries.append(SpoolEntry(path, events))
        return entries

    def owned(self) -> int:
        """Events in files this process owns and has not yet had acknowledged."""
        me = os.getpid()
        total = 0
        for path in self.directory.glob(f"*{_SUFFIX}"):
            parsed = self._parse(path)
            if parsed is not None and parsed[1] == me:
                total += parsed[0]
        return total

    @staticmethod
    def remove(entry: SpoolEntry) -> None:
        """Forget a file once the server acknowledged (or permanently refused) it."""
        with contextlib.suppress(FileNotFoundError):
            entry.path.unlink()
