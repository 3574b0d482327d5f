"""Progress of long work, shown wherever the work runs, unless asked to be quiet.

Where it shows (`Progress(..., enabled=None or True)`):

- a terminal: a live tqdm bar with the step, the rate in windows/s, the ETA and a postfix (for
  training: epoch and running loss);
- a Jupyter notebook: a tqdm bar in the cell (a widget when ipywidgets is installed, else a
  text bar on the cell's stdout, so nothing shows as an error);
- elsewhere (scripts piped to a file, CI, cron, docker logs): a line when the work starts, one
  every `FORECASTER_PROGRESS_INTERVAL_S` seconds (default 30) and one when it ends, so a long
  job is never silent. With a logging handler configured (the command line, the jobs, an
  application's own `logging.basicConfig`) the lines go through logging; without one, as plain
  lines on stderr.

`enabled=False` shows nothing. The postfix is computed only when shown: on a GPU reading the
loss syncs with the host.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import time
from collections.abc import Callable

from tqdm import tqdm

log = logging.getLogger("forecaster.runtime.progress")


def _interval() -> float:
    try:
        return float(os.environ.get("FORECASTER_PROGRESS_INTERVAL_S", "30"))
    except ValueError:
        return 30.0


def in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel (not a terminal IPython)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def _form(enabled: bool | None) -> str:
    """How progress shows here: off, bar (terminal), notebook, log or lines (plain stderr)."""
    if enabled is False:
        return "off"
    if in_notebook():
        return "notebook"
    if sys.stderr.isatty():
        return "bar"
    return "log" if log.hasHandlers() else "lines"


def _bar(form: str, desc: str, total: int, unit: str):
    if form == "notebook" and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm as notebook_tqdm

        return notebook_tqdm(total=total, desc=desc, unit=unit)
    if form == "notebook":  # a text bar on stdout: stderr would show as an error in the cell
        return tqdm(total=total, desc=desc, unit=unit, file=sys.stdout, dynamic_ncols=True)
    return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)


class Progress:
    """`enabled`: None or True shows progress in the form that suits (see the module); False nothing.

    `interval`: seconds between the log or stderr lines (default FORECASTER_PROGRESS_INTERVAL_S).
    """

    def __init__(
        self,
        desc: str,
        total: int,
        *,
        unit: str = "step",
        items_per_step: int = 1,
        enabled: bool | None = None,
        interval: float | None = None,
    ):
        self.desc, self.total, self.unit, self.items_per_step = desc, total, unit, items_per_step
        self.form = _form(enabled)
        self.bar = _bar(self.form, desc, total, unit) if self.form in ("bar", "notebook") else None
        self.done = 0
        self.started = self.last_shown = time.perf_counter()
        # Seconds between lines (the bar redraws at most twice a second); 0: a line per step.
        self.interval = 0.5 if self.bar is not None else _interval() if interval is None else interval
        self._say(f"started, {total:,} {_plural(unit)} to go")

    @property
    def quiet(self) -> bool:
        return self.form == "off"

    def _say(self, message: str, *args) -> None:
        """A line of the log or lines forms (nothing on a bar or when quiet)."""
        if self.form == "log":
            log.info(f"%s: {message}", self.desc, *args)
        elif self.form == "lines":
            print(f"{self.desc}: {message % args}", file=sys.stderr, flush=True)

    def advance(self, postfix: Callable[[], dict] | None = None, steps: int = 1) -> None:
        self.done += steps
        if self.bar is not None:
            self.bar.update(steps)
        now = time.perf_counter()
        if self.quiet or now - self.last_shown < self.interval:
            return
        self.last_shown = now
        facts = postfix() if postfix else {}
        rate = self.done * self.items_per_step / max(now - self.started, 1e-9)
        if self.bar is not None:
            self.bar.set_postfix({**_rounded(facts), "windows/s": f"{rate:,.0f}"}, refresh=False)
            return
        eta = (self.total - self.done) / max(self.done / (now - self.started), 1e-9)
        details = ", ".join(f"{k} {v}" for k, v in _rounded(facts).items())
        self._say(
            "%d/%d %s (%.0f%%)%s, %s, ETA %s",
            self.done,
            self.total,
            _plural(self.unit),
            100 * self.done / max(self.total, 1),
            f", {details}" if details else "",
            _rate(rate, self.unit, self.items_per_step),
            _duration(eta),
        )

    def note(self, message: str) -> None:
        """A milestone (an epoch's end): shown on the bar, logged at debug level otherwise."""
        if self.bar is not None:
            self.bar.set_description_str(f"{self.desc} ({message})", refresh=False)
        elif not self.quiet:
            log.debug("%s: %s", self.desc, message)

    def close(self, ok: bool = True) -> None:
        """The end: `ok` False when the work failed (the line says where it stopped)."""
        if self.bar is not None:
            self.bar.close()
        elapsed = _duration(time.perf_counter() - self.started)
        if ok:
            self._say(f"done, {self.done:,} {_plural(self.unit)} in {elapsed}")
        else:
            self._say(f"stopped after {self.done:,}/{self.total:,} {_plural(self.unit)} ({elapsed})")


def _rate(rate: float, unit: str, items_per_step: int) -> str:
    """`12,345 windows/s`, `3.2 batches/s`, or for slow steps `41s per task`."""
    if items_per_step > 1:
        return f"{rate:,.0f} windows/s"
    return f"{rate:,.1f} {_plural(unit)}/s" if rate >= 1 else f"{_duration(1 / max(rate, 1e-9))} per {unit}"


def _plural(unit: str) -> str:
    return unit + ("es" if unit.endswith(("s", "ch", "sh", "x")) else "s")


def _rounded(facts: dict) -> dict:
    return {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in facts.items()}


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
