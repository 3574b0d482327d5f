"""One logging set-up for the command line and the jobs: readable lines on stderr."""

from __future__ import annotations

import logging
import sys

from rich.console import Console
from rich.logging import RichHandler


def setup_logging(verbose: bool = False) -> None:
    """INFO (DEBUG when verbose) to stderr through rich; Python warnings go through logging too."""
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
        force=True,
    )
    logging.captureWarnings(True)
