"""MkDocs hook: put the notebooks of `notebooks/` into the site, so they live in one place only.

Each `notebooks/<name>.ipynb` becomes the page `notebooks/<name>/` (mkdocs-jupyter renders it).
When `make notebooks` has written an executed copy under `build/notebooks/` that is newer than the
committed notebook, the site shows that copy with its outputs; otherwise the committed notebook
(committed without outputs: tests/test_notebooks.py requires it).
"""

from __future__ import annotations

import logging
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / "build" / "notebooks"

log = logging.getLogger("mkdocs.hooks.notebooks")


def source_of(notebook: Path) -> Path:
    """The executed copy when it is newer than the committed notebook, else the notebook itself."""
    executed = EXECUTED / notebook.name
    if executed.is_file() and executed.stat().st_mtime >= notebook.stat().st_mtime:
        return executed
    return notebook


@event_priority(100)  # before mkdocs-jupyter turns .ipynb files into pages
def on_files(files: Files, config) -> Files:
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        source = source_of(notebook)
        log.info("notebook %s from %s", notebook.name, source.relative_to(ROOT))
        # A plain File (not File.generated): mkdocs-jupyter reads the path from src_dir + src_uri.
        files.append(
            File(
                f"notebooks/{notebook.name}",
                src_dir=str(source.parents[1]),  # notebooks/ or build/notebooks/ lie one level below
                dest_dir=config.site_dir,
                use_directory_urls=config.use_directory_urls,
            )
        )
    return files
