"""Chronos Synapse server: ingestion, API keys and storage."""

from chronos_server.app import create_app
from chronos_server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
