"""An RQ application whose jobs are reported to Chronos; see README.md in this folder."""
