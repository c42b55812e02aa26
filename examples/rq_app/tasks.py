"""The jobs. Nothing in here knows about Chronos: the worker class does the reporting."""

from __future__ import annotations

import time


def resize_image(name: str) -> str:
    print(f"resizing {name}")
    time.sleep(0.01)
    return f"{name}.thumb.png"


def charge_card(amount: int) -> None:
    print(f"charging {amount}")
    raise ConnectionError("payment gateway timed out")


def slow_export() -> None:
    time.sleep(30)  # longer than its job_timeout: reported as `timeout`


def nightly_cleanup() -> int:
    print("cleaning up")
    return 0
