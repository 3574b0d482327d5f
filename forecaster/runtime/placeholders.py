"""Refuse to start with a secret still at the placeholder `.env.example` gives it (CHANGE-ME).

`docker-compose config` accepts a `.env` copied unchanged: every value is set, so its `:?` checks
(which refuse a missing POSTGRES_PASSWORD) pass. The service and the jobs check at start-up
instead, and stop with one line naming the variable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

PLACEHOLDER = "CHANGE-ME"
# The secrets of .env.example first (the variable to fix), then anything built from them
# (FORECASTER_FORECAST_STORE_URL holds POSTGRES_PASSWORD).
SECRETS = ("POSTGRES_PASSWORD", "FORECASTER_API_KEYS", "RAY_AUTH_TOKEN")
PREFIXES = ("FORECASTER_", "POSTGRES_", "RAY_", "MLFLOW_")


def placeholder_problem(environ: Mapping[str, str] | None = None) -> str | None:
    """A one-line description of the first variable still holding the placeholder, else None."""
    environ = os.environ if environ is None else environ
    others = sorted(name for name in environ if name.startswith(PREFIXES) and name not in SECRETS)
    for name in (*SECRETS, *others):
        if PLACEHOLDER in environ.get(name, ""):
            return (
                f"{name} is still the placeholder {PLACEHOLDER} of .env.example: "
                "set a real value in .env (or the environment) before starting"
            )
    return None


def refuse_placeholders(environ: Mapping[str, str] | None = None) -> None:
    """Raise ValueError (one line, naming the variable) when a setting is still a placeholder."""
    if problem := placeholder_problem(environ):
        raise ValueError(problem)


def exit_on_placeholders(environ: Mapping[str, str] | None = None) -> None:
    """For entry points (the API, the jobs run as modules): the problem as one line, exit code 2."""
    if problem := placeholder_problem(environ):
        print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(2)
