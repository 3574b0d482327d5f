"""One logging set-up for the command line, the jobs and the service.

- On a terminal: rich, readable lines on stderr.
- Elsewhere (pipes, cron, docker logs): plain `time level logger: message` lines on stderr.
- `FORECASTER_LOG_FORMAT=json`: one JSON object per line (docker logs, log shippers).

Long floats in messages are rounded (a logged dict of diagnostics would otherwise show
`0.43883557224151015`). Libraries that talk a lot (MLflow, alembic, urllib3, ...) log at
WARNING unless verbose; their records go through the same handler, so there is one style.
Verbosity travels in `FORECASTER_VERBOSE`, so a job the command line execs inherits it.
Every handler made here masks credentials (`user:password@` in URIs, `password=...`) in the
message, its arguments and the exception text, whichever library logged them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
from datetime import UTC, datetime

from forecaster.runtime.redact import mask_credentials

# Libraries whose chatter is noise to a user ("Creating initial MLflow database tables...") and
# the level they keep unless verbose. yfinance and urllib3 warn about each failed try; our error
# says it once.
QUIET_LOGGERS = {
    **dict.fromkeys(("mlflow", "alembic", "httpx", "httpcore", "git", "matplotlib", "PIL"), "WARNING"),
    "yfinance": "ERROR",
    "urllib3": "ERROR",  # a line per retry of a dead server: the error says it once, with the count
}
_configured = False
_LONG_FLOAT = re.compile(r"(?<![\w.:])-?\d+\.\d{5,}(?:e[-+]?\d+)?")


def is_verbose() -> bool:
    """Whether the user asked for details (`--verbose`, or FORECASTER_VERBOSE=1)."""
    return os.environ.get("FORECASTER_VERBOSE", "").lower() in ("1", "true", "yes")


def round_numbers(message: str) -> str:
    """Floats with five or more decimals -> four significant digits (0.4388, 12346, 1.235e-05)."""
    return _LONG_FLOAT.sub(lambda m: _significant(float(m.group())), message)


def _significant(value: float, digits: int = 4) -> str:
    if value == 0 or not math.isfinite(value) or abs(value) < 1e-3:
        return f"{value:.{digits}g}"
    return f"{value:.{max(0, digits - 1 - math.floor(math.log10(abs(value))))}f}"


class _Rounded(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return round_numbers(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, and exc_info."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": round_numbers(record.getMessage()),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc_info"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


class MaskCredentials(logging.Filter):
    """Mask credentials in a record before any formatter sees it: message, args, exception, stack.

    The exception is rendered to (masked) text here and `exc_info` dropped, so no formatter
    (rich's tracebacks included) renders the original, whose frames' text may hold the URI.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.msg, record.args = mask_credentials(record.getMessage()), None
        except Exception:  # arguments that do not fit the message: show both, masked
            record.msg, record.args = mask_credentials(f"{record.msg} {record.args!r}"), None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = mask_credentials(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_credentials(record.stack_info)
        return True


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record comes (test runners and notebooks swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_logging(verbose: bool | None = None, *, fmt: str | None = None) -> None:
    """Configure the root logger of this process; calling it again replaces the handler.

    `verbose`: DEBUG lines, and library INFO lines; None reads FORECASTER_VERBOSE. `fmt`: "json",
    "plain" or "rich"; None reads FORECASTER_LOG_FORMAT, else rich on a terminal, plain elsewhere.
    """
    global _configured
    verbose = is_verbose() if verbose is None else verbose
    os.environ["FORECASTER_VERBOSE"] = "1" if verbose else "0"  # exec'd jobs inherit it
    handler = stderr_handler(fmt)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)
    logging.captureWarnings(True)
    # MLflow reads this when it is imported (later, lazily); `adopt_library_loggers` covers the rest.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "INFO" if verbose else "WARNING")
    _configured = True
    adopt_library_loggers()


def stderr_handler(fmt: str | None = None) -> logging.Handler:
    """The handler of `setup_logging`: rich, plain or JSON lines on stderr (None: from the environment).

    Credentials are masked in everything it writes (`MaskCredentials`).
    """
    handler = _stderr_handler(fmt)
    handler.addFilter(MaskCredentials())
    return handler


def _stderr_handler(fmt: str | None) -> logging.Handler:
    fmt = (fmt or os.environ.get("FORECASTER_LOG_FORMAT") or "").lower()
    if fmt not in ("json", "plain", "rich"):
        fmt = "rich" if sys.stderr.isatty() else "plain"
    if fmt == "rich":
        from rich.console import Console
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=Console(stderr=True), show_path=False)
        handler.setFormatter(_Rounded("%(message)s"))
        return handler
    handler = _StderrHandler()
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else _Rounded("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    )
    return handler


def server_logging_config() -> dict:
    """`setup_logging` as a `logging.config.dictConfig` dict, for uvicorn's `log_config`.

    uvicorn applies it in every worker process (workers are spawned: a set-up made in the parent
    would not reach them), so the API's own lines, uvicorn's and its access log share one format.
    """
    verbose = is_verbose()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"stderr": {"()": stderr_handler}},
        "root": {"handlers": ["stderr"], "level": "DEBUG" if verbose else "INFO"},
        "loggers": {
            **{
                name: {"handlers": [], "propagate": True}
                for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
            },
            **{name: {"level": "INFO" if verbose else level} for name, level in QUIET_LOGGERS.items()},
        },
    }


def adopt_library_loggers() -> None:
    """Route chatty libraries through our handler, at WARNING unless verbose.

    MLflow installs its own handler and stops propagation when it is imported: call this again
    after importing it (`forecaster.tracking.setup.configure` does). A no-op in a process that
    did not call `setup_logging` (a notebook, an application embedding the library).
    """
    if not _configured:
        return
    for name, level in QUIET_LOGGERS.items():
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel("INFO" if is_verbose() else level)
