"""Cutting large text fields down to a byte budget, keeping both ends.

The head of a log says what a run set out to do and the tail says how it ended, so both are
kept and the middle is replaced by a marker that says how much was left out. Budgets are in
UTF-8 bytes (what goes over the wire); a code point is never split.
"""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_LOG_BYTES", "truncate_parts", "truncate_text"]

# How much of stdout and of stderr (each) and of a stack the SDK keeps by default, in bytes.
DEFAULT_MAX_LOG_BYTES = 10_000

_MARKER = "\n…[truncated {} bytes]…\n"


def _marker(omitted: int) -> str:
    return _MARKER.format(omitted)


def _encode(text: str) -> tuple[str, bytes]:
    """The text (made encodable) and its UTF-8 bytes.

    Console output may hold lone surrogates (surrogateescape); they cannot be sent as UTF-8,
    so they become "?" rather than failing the whole event.
    """
    try:
        return text, text.encode("utf-8")
    except UnicodeEncodeError:
        data = text.encode("utf-8", "replace")
        return data.decode("utf-8"), data


def truncate_text(text: str, max_bytes: int) -> str:
    """Return `text` whole if its UTF-8 encoding fits in `max_bytes`, else head + marker + tail.

    The result's UTF-8 encoding is never longer than `max_bytes`; `max_bytes <= 0` gives "".
    """
    if max_bytes <= 0:
        return ""
    if text.isascii():  # O(1) in CPython: a flag on the string
        if len(text) <= max_bytes:
            return text
        data = text.encode("ascii")
    else:
        text, data = _encode(text)
        if len(data) <= max_bytes:
            return text
    middle = len(data) // 2
    return _cut(data[:middle], data[middle:], 0, max_bytes)


def truncate_parts(head: str, tail: str, max_bytes: int, omitted_bytes: int = 0) -> str:
    """Like `truncate_text` for a text whose middle (`omitted_bytes` long) is already gone.

    Used by bounded buffers that only kept the two ends of a stream; the marker counts the
    bytes dropped earlier as well as those cut here.
    """
    if max_bytes <= 0:
        return ""
    if omitted_bytes <= 0:
        return truncate_text(head + tail, max_bytes)
    return _cut(_encode(head)[1], _encode(tail)[1], omitted_bytes, max_bytes)


def _cut(head: bytes, tail: bytes, omitted: int, max_bytes: int) -> str:
    """Keep the start of `head` and the end of `tail` around a marker, within `max_bytes`."""
    total = len(head) + omitted + len(tail)
    # The marker can only get shorter once the kept bytes are subtracted, so reserving room
    # for the marker of `total` keeps the result within budget.
    budget = max_bytes - len(_marker(total).encode("utf-8"))
    if budget <= 0:
        # Too small for a marker: a plain cut of the head is the most useful thing left.
        return (head + tail)[:max_bytes].decode("utf-8", "ignore")
    keep_head = min(budget - budget // 2, len(head))
    keep_tail = min(budget - keep_head, len(tail))
    keep_head = min(budget - keep_tail, len(head))
    # "ignore" drops only the partial code point at the cut: the input is valid UTF-8.
    head_text = head[:keep_head].decode("utf-8", "ignore")
    tail_text = tail[len(tail) - keep_tail :].decode("utf-8", "ignore") if keep_tail else ""
    kept = len(head_text.encode("utf-8")) + len(tail_text.encode("utf-8"))
    return head_text + _marker(total - kept) + tail_text
