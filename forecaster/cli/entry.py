"""The `forecaster` console script: `--version` answers before anything heavy is imported.

Building the Typer app imports every verb's module (numpy, pandas, pydantic-settings: ~1 s);
a version check from a shell script or a health probe should not pay for that.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from forecaster import __version__

        print(f"forecaster {__version__}")
        return
    from forecaster.cli.main import app

    app()
