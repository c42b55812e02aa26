"""The worker's end of its relay, over a real pipe whose other end the test reads (or leaves
unread, as a stuck relay would): frames stay whole, and nothing blocks the worker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from chronos_integrations.rq._channel import PIPE_BUF, decode_frames
from chronos_integrations.rq._relay import MAX_PENDING_BYTES, RelayLink


class PipeProcess:
    """What `RelayLink` uses of a relay's `Popen`: its stdin is a pipe this test reads."""

    pid = 0

    def __init__(self) -> None:
        self.reader, writer = os.pipe()
        os.set_blocking(self.reader, False)
        self.stdin: Any = os.fdopen(writer, "wb")
        answers, self.answer_writer = os.pipe()  # the relay never answers
        self.stdout: Any = os.fdopen(answers, "rb")

    def poll(self) -> int | None:
        return 0 if self.stdin.closed else None

    def wait(self, timeout: float | None = None) -> int:
        return 0

    def kill(self) -> None:
        pass

    def read(self) -> list[Any]:
        chunks = []
        try:
            while chunk := os.read(self.reader, 1 << 20):
                chunks.append(chunk)
        except BlockingIOError:
            pass
        return decode_frames(b"".join(chunks))


@pytest.fixture
def relay() -> Iterator[tuple[RelayLink, PipeProcess]]:
    process = PipeProcess()
    link = RelayLink(process, {"captureConsole": True, "maxLogBytes": 100})  # type: ignore[arg-type]
    yield link, process
    link.close(timeout=1)
    os.close(process.reader)
    os.close(process.answer_writer)


def test_cron_entries_cross_in_frames_no_other_write_can_split(
    relay: tuple[RelayLink, PipeProcess],
) -> None:
    link, process = relay
    entries = [(f"jobs.job_{n}", f"job {n}", "*/5 * * * *", None, "UTC", "q") for n in range(300)]
    huge = ("jobs.huge", "x" * PIPE_BUF, "* * * * *", None, None, "q")
    link.register_cron([*entries[:150], huge, *entries[150:]])
    frames = process.read()
    assert len(frames) > 1
    assert all(kind == "cron" for kind, _ in frames)
    assert [tuple(e) for _, batch in frames for e in batch] == entries  # the huge one left out
    assert link.idle


def test_a_stuck_relay_never_blocks_the_worker_and_a_half_written_frame_keeps_horses_off(
    relay: tuple[RelayLink, PipeProcess],
) -> None:
    link, process = relay
    payload = b"x" * 3_000
    sent = 0
    while link.idle:
        assert link.send_run(("j",) * 9, None, payload)
        sent += 1
        assert sent < 10_000, "the pipe never filled"
    # The last frame is half written and waits: a horse must not write into the pipe now.
    assert link.dropped == 0
    while link.send_run(("j",) * 9, None, payload):
        sent += 1
        assert sent < 10_000 + MAX_PENDING_BYTES // len(payload), "nothing was ever dropped"
    assert link.dropped == 1  # past the bound: dropped and counted, not blocked
    # The relay catches up: everything kept arrives whole, in order.
    received = process.read()
    link.flush(timeout=0)  # writes what waits; no answer comes
    received += process.read()
    while not link.idle:
        link.flush(timeout=0)
        received += process.read()
    runs = [frame for frame in received if frame[0] == "run"]
    assert len(runs) == sent
    assert all(frame[3] == payload for frame in runs)
