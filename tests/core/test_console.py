from __future__ import annotations

import asyncio
import io
import re
import sys
import threading

import pytest

from chronos_core import _console
from chronos_core._console import BoundedText, ConsoleCapture


def test_output_is_passed_through_and_kept_for_the_run(console: pytest.CaptureFixture[str]) -> None:
    capture = ConsoleCapture(1_000).begin()
    print("hello")
    print("oops", file=sys.stderr)
    capture.end()
    print("after the run")

    assert capture.stdout.text() == "hello\n"
    assert capture.stderr.text() == "oops\n"
    assert console.readouterr() == ("hello\nafter the run\n", "oops\n")


def test_runs_in_two_threads_get_only_their_own_output(console: pytest.CaptureFixture[str]) -> None:
    both_started = threading.Barrier(2)
    captures: dict[str, ConsoleCapture] = {}

    def job(name: str) -> None:
        capture = ConsoleCapture(10_000).begin()
        both_started.wait()
        for i in range(200):
            print(f"{name} line {i}")
        captures[name] = capture
        capture.end()

    threads = [threading.Thread(target=job, args=(name,)) for name in ("alpha", "beta")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for name, other in (("alpha", "beta"), ("beta", "alpha")):
        text = captures[name].stdout.text()
        assert text == "".join(f"{name} line {i}\n" for i in range(200))
        assert other not in text
    passed_through = console.readouterr().out
    assert passed_through.count("alpha line") == 200
    assert passed_through.count("beta line") == 200


async def test_runs_in_two_asyncio_tasks_get_only_their_own_output(
    console: pytest.CaptureFixture[str],
) -> None:
    async def job(name: str) -> str:
        capture = ConsoleCapture(10_000).begin()
        for i in range(50):
            print(f"{name} {i}")
            await asyncio.sleep(0)  # let the other task print in between
        capture.end()
        return capture.stdout.text()

    alpha, beta = await asyncio.gather(job("alpha"), job("beta"))

    assert alpha == "".join(f"alpha {i}\n" for i in range(50))
    assert beta == "".join(f"beta {i}\n" for i in range(50))
    # Interleaved on the real stream: the runs did overlap.
    assert console.readouterr().out.startswith("alpha 0\nbeta 0\nalpha 1\n")


def test_output_from_a_context_without_a_run_is_only_passed_through(
    console: pytest.CaptureFixture[str],
) -> None:
    capture = ConsoleCapture(1_000).begin()
    background = threading.Thread(target=lambda: print("exporter thread says hi"))
    background.start()
    background.join()
    print("job output")
    capture.end()

    assert capture.stdout.text() == "job output\n"
    assert "exporter thread says hi" in console.readouterr().out


def test_a_run_inside_another_also_feeds_the_outer_one(console: pytest.CaptureFixture[str]) -> None:
    outer = ConsoleCapture(1_000).begin()
    print("outer 1")
    inner = ConsoleCapture(1_000).begin()
    print("inner")
    inner.end()
    print("outer 2")
    outer.end()

    assert inner.stdout.text() == "inner\n"
    assert outer.stdout.text() == "outer 1\ninner\nouter 2\n"


def test_a_process_capture_keeps_what_every_context_without_a_run_writes(
    console: pytest.CaptureFixture[str],
) -> None:
    # An RQ work horse's: one job per process, its threads' output included.
    process = ConsoleCapture(1_000).begin_process()
    print("job output")
    background = threading.Thread(target=lambda: print("a thread the job started"))
    background.start()
    background.join()
    inner = ConsoleCapture(1_000).begin()  # a run inside the job feeds it too
    print("inner", file=sys.stderr)
    inner.end()
    process.end()
    print("after the end")

    assert process.stdout.text() == "job output\na thread the job started\n"
    assert process.stderr.text() == "inner\n"
    assert inner.stderr.text() == "inner\n"
    assert _console._process is None
    assert "after the end" in console.readouterr().out


def test_a_paused_process_capture_keeps_nothing_until_switched_on(
    console: pytest.CaptureFixture[str],
) -> None:
    process = ConsoleCapture(1_000)
    process.paused = True
    process.begin_process()
    try:
        print("the worker's own output")
        assert process.stdout.text() == ""
        assert not process.written
        process.paused = False
        print(end="")
        assert not process.written  # nothing was written
        print("the job's")
        assert process.written
    finally:
        process.end()

    assert process.stdout.text() == "the job's\n"
    assert console.readouterr().out == "the worker's own output\nthe job's\n"


def test_ending_from_another_context_stops_capture_there(
    console: pytest.CaptureFixture[str],
) -> None:
    capture = ConsoleCapture(1_000).begin()
    # An integration whose "end" callback runs in a copy of the context.
    import contextvars

    contextvars.copy_context().run(capture.end)
    print("after end")

    assert capture.stdout.text() == ""


def test_buffer_is_bounded_and_keeps_both_ends() -> None:
    text = BoundedText(1_000)
    text.append("FIRST LINE\n")
    for i in range(100_000):
        text.append(f"noise {i}\n")
    text.append("LAST LINE\n")

    head, tail, _omitted = text.parts()
    assert len(head) + len(tail) <= 2_000
    result = text.text()
    assert result.startswith("FIRST LINE\n")
    assert result.endswith("LAST LINE\n")
    assert len(result.encode()) <= 1_000
    marker = re.search(r"\[truncated (\d+) bytes\]", result)
    assert marker is not None
    total = 11 + sum(len(f"noise {i}\n") for i in range(100_000)) + 10
    kept = len(result.encode()) - len(f"\n…[truncated {marker.group(1)} bytes]…\n".encode())
    assert int(marker.group(1)) == total - kept


def test_one_huge_write_is_bounded_too() -> None:
    text = BoundedText(100)
    text.append("é" * 1_000_000)
    head, tail, omitted = text.parts()
    assert len(head) == 100
    assert len(tail) == 100
    assert omitted == 2 * (1_000_000 - 200)


def test_zero_budget_keeps_nothing() -> None:
    text = BoundedText(0)
    text.append("anything")
    assert text.parts() == ("", "", 0)
    assert text.text() == ""


def test_the_wrapper_behaves_like_the_stream_it_wraps(console: pytest.CaptureFixture[str]) -> None:
    original = sys.stdout
    _console.install()
    stream = sys.stdout

    assert stream is not original
    assert isinstance(stream, io.TextIOBase)
    assert stream.encoding == original.encoding
    assert stream.isatty() is False
    assert stream.writable() is True
    with pytest.raises(io.UnsupportedOperation):
        stream.fileno()  # pytest's capture has none; the real answer is passed through
    assert stream.getvalue() == original.getvalue()  # type: ignore[attr-defined]
    capture = ConsoleCapture(100).begin()
    assert stream.write("abc") == 3
    stream.writelines(["d\n", "e\n"])
    stream.flush()
    capture.end()
    assert capture.stdout.text() == "abcd\ne\n"
    assert console.readouterr().out == "abcd\ne\n"


def test_fileno_of_a_real_stream_is_passed_through(capfd: pytest.CaptureFixture[str]) -> None:
    try:
        _console.install()
        capture = ConsoleCapture(100).begin()
        print("to the terminal")
        capture.end()
        assert sys.stdout.fileno() == sys.stdout.wrapped.fileno()  # type: ignore[union-attr]
    finally:
        _console.uninstall()
    assert capture.stdout.text() == "to the terminal\n"
    assert capfd.readouterr().out == "to the terminal\n"


def test_install_is_idempotent_and_uninstall_restores(
    console: pytest.CaptureFixture[str],
) -> None:
    original_out, original_err = sys.stdout, sys.stderr
    _console.install()
    wrapper = sys.stdout
    _console.install()
    assert sys.stdout is wrapper
    assert _console.is_installed()

    _console.uninstall()
    assert sys.stdout is original_out
    assert sys.stderr is original_err


def test_a_stream_replaced_after_us_is_left_alone(console: pytest.CaptureFixture[str]) -> None:
    _console.install()
    theirs = io.StringIO()
    sys.stdout = theirs

    _console.uninstall()
    assert sys.stdout is theirs  # not put back over theirs

    capture = ConsoleCapture(100).begin()  # wraps whatever is there now
    print("to theirs")
    capture.end()
    assert theirs.getvalue() == "to theirs\n"
    assert capture.stdout.text() == "to theirs\n"
