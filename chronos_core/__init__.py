"""Chronos Synapse SDK."""
