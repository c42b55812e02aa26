"""ChronosSettings: defaults, the environment, and refused values."""

from __future__ import annotations

import pytest

from chronos_core import ConfigurationError
from chronos_core._config import (
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_BATCH_SIZE,
    MAX_BATCH_BYTES,
    ChronosSettings,
)


def test_batch_limits_default_within_what_the_server_accepts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CHRONOS_MAX_BATCH_SIZE", raising=False)
    monkeypatch.delenv("CHRONOS_MAX_BATCH_BYTES", raising=False)
    settings = ChronosSettings.load()
    assert settings.max_batch_size == DEFAULT_MAX_BATCH_SIZE <= 1_000
    assert settings.max_batch_bytes == DEFAULT_MAX_BATCH_BYTES < MAX_BATCH_BYTES


def test_max_batch_bytes_comes_from_the_environment_and_an_argument_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHRONOS_MAX_BATCH_BYTES", "65536")
    assert ChronosSettings.load().max_batch_bytes == 65_536
    assert ChronosSettings.load(max_batch_bytes=2_048).max_batch_bytes == 2_048


@pytest.mark.parametrize("value", ["0", "1023", str(5 * 1024 * 1024 + 1), "lots"])
def test_a_max_batch_bytes_the_server_would_refuse_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CHRONOS_MAX_BATCH_BYTES", value)
    with pytest.raises(ConfigurationError, match="max_batch_bytes"):
        ChronosSettings.load()


@pytest.mark.parametrize("value", ["0", "1001"])
def test_a_max_batch_size_over_the_servers_limit_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CHRONOS_MAX_BATCH_SIZE", value)
    with pytest.raises(ConfigurationError, match="max_batch_size"):
        ChronosSettings.load()
