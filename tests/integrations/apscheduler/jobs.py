"""Job functions the scheduler tests run (module level, so their qualified names are stable)."""

from __future__ import annotations

import asyncio
import sys
import time


def report() -> str:
    print("report built")
    return "done"


def cleanup() -> int:
    return 1


def slow_and_chatty() -> int:
    print("starting")
    print("warning: disk almost full", file=sys.stderr)
    time.sleep(0.1)
    return 42


def broken() -> None:
    print("about to fail")
    raise ValueError("the input file is empty")


async def async_report() -> str:
    print("async report")
    await asyncio.sleep(0.05)
    return "async done"


async def async_broken() -> None:
    await asyncio.sleep(0.01)
    raise KeyError("missing")


def sleeper(seconds: float) -> None:
    time.sleep(seconds)
