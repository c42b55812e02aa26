from __future__ import annotations

import re

import pytest

from chronos_core._truncate import truncate_parts, truncate_text

MARKER = re.compile(r"\n…\[truncated (\d+) bytes\]…\n")

SAMPLES = {
    "ascii": "abcdefghij" * 50,
    "two_byte": "é" * 300,
    "three_byte": "€" * 300,
    "four_byte": "🙂" * 300,
    "mixed": ("aé€🙂" * 100) + "tail-é€🙂",
}


def _utf8(text: str) -> int:
    return len(text.encode("utf-8"))


@pytest.mark.parametrize("name", sorted(SAMPLES))
@pytest.mark.parametrize("max_bytes", [1, 2, 3, 5, 7, 30, 31, 32, 33, 57, 100, 101, 255, 1000])
def test_result_never_exceeds_the_byte_budget_and_splits_no_code_point(
    name: str, max_bytes: int
) -> None:
    text = SAMPLES[name]
    result = truncate_text(text, max_bytes)

    assert _utf8(result) <= max_bytes
    # Every kept character is a whole character of the original, in order.
    match = MARKER.search(result)
    if match is None:
        assert text.startswith(result)
    else:
        head, tail = result[: match.start()], result[match.end() :]
        assert text.startswith(head)
        assert text.endswith(tail)
        assert int(match.group(1)) == _utf8(text) - _utf8(head) - _utf8(tail)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_text_that_fits_is_returned_unchanged(name: str) -> None:
    text = SAMPLES[name]
    assert truncate_text(text, _utf8(text)) == text
    assert truncate_text(text, _utf8(text) - 1) != text


def test_keeps_head_and_tail_with_a_marker_saying_how_much_is_gone() -> None:
    text = "START of the job\n" + "x" * 20_000 + "\nTraceback: the END"
    result = truncate_text(text, 1_000)

    assert result.startswith("START of the job\n")
    assert result.endswith("\nTraceback: the END")
    match = MARKER.search(result)
    assert match is not None
    assert _utf8(result) <= 1_000
    assert _utf8(result) >= 990  # the budget is used, not wasted
    assert int(match.group(1)) == _utf8(text) - (_utf8(result) - _utf8(match.group(0)))


def test_zero_budget_gives_empty_text() -> None:
    assert truncate_text("anything", 0) == ""
    assert truncate_text("", 10) == ""


def test_lone_surrogates_from_undecodable_output_are_made_sendable() -> None:
    text = b"ok \xff\xfe bytes".decode("utf-8", "surrogateescape")
    result = truncate_text(text, 100)
    assert result == "ok ?? bytes"
    result.encode("utf-8")  # would raise if a surrogate were left


def test_parts_count_bytes_dropped_earlier() -> None:
    result = truncate_parts("head " * 10, " tail" * 10, 60, omitted_bytes=5_000)

    match = MARKER.search(result)
    assert match is not None
    head, tail = result[: match.start()], result[match.end() :]
    assert ("head " * 10).startswith(head)
    assert (" tail" * 10).endswith(tail)
    assert int(match.group(1)) == 100 + 5_000 - _utf8(head) - _utf8(tail)
    assert _utf8(result) <= 60


def test_parts_without_a_gap_are_joined_when_they_fit() -> None:
    assert truncate_parts("ab", "cd", 10) == "abcd"
