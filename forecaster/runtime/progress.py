"""Progress of long work: a live bar on a terminal, a log line every few seconds elsewhere.

On a terminal, tqdm shows the step, the rate in items/s, the ETA and a postfix (for training:
epoch and running loss). Without one (CI, cron, docker logs) the same facts go to the log every
`FORECASTER_PROGRESS_INTERVAL_S` seconds (default 30), so a long job is never silent. The postfix
is computed only when shown: on a GPU reading the loss syncs with the host.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable

from tqdm import tqdm  # plain: tqdm.auto warns in a notebook without ipywidgets

log = logging.getLogger("forecaster.runtime.progress")


def _interval() -> float:
    try:
        return float(os.environ.get("FORECASTER_PROGRESS_INTERVAL_S", "30"))
    except ValueError:
        return 30.0


class Progress:
    """`enabled`: None chooses by whether stderr is a terminal; False shows nothing."""

    def __init__(
        self,
        desc: str,
        total: int,
        *,
        unit: str = "step",
        items_per_step: int = 1,
        enabled: bool | None = None,
    ):
        self.desc, self.total, self.unit, self.items_per_step = desc, total, unit, items_per_step
        self.quiet = enabled is False
        self.bar = None
        if enabled is True or (enabled is None and sys.stderr.isatty()):
            self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
        self.done = 0
        self.started = self.last_shown = time.perf_counter()
        self.interval = 0.5 if self.bar is not None else _interval()

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
        log.info(
            "%s: %d/%d %s (%.0f%%)%s, %s/s, ETA %s",
            self.desc,
            self.done,
            self.total,
            self.unit,
            100 * self.done / max(self.total, 1),
            f", {details}" if details else "",
            f"{rate:,.0f} windows" if self.items_per_step > 1 else f"{rate:,.1f} {self.unit}",
            _duration(eta),
        )

    def note(self, message: str) -> None:
        """A milestone (an epoch's end): shown on the bar, logged at debug level otherwise."""
        if self.bar is not None:
            self.bar.set_description_str(f"{self.desc} ({message})", refresh=False)
        elif not self.quiet:
            log.debug("%s: %s", self.desc, message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _rounded(facts: dict) -> dict:
    return {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in facts.items()}


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
