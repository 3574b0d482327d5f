"""Runtime: engines (local | ray), logs, progress, paths and redaction, usable by every layer."""
