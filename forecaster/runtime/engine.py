"""Where work runs: `local` (this process, the default) or `ray` (tasks on a Ray cluster).

The jobs never write Ray plumbing of their own: they hand a pure function and its items to
`map_tasks`, which runs them one after another here, or as one Ray task each (in order, the
same results). Ray is imported only when the `ray` engine is asked for, so the local engine
starts no Ray process and does not even import it.

    results = map_tasks(fit_one_fold, folds, "ray", shared={"bars": bars})

`shared` values go to the object store once and every task reads them from there.
`map_frames` is the same for work that should load something heavy once per worker (a model):
a callable class over pandas frames, one instance here, a pool of Ray Data actors on Ray. With
`RAY_ADDRESS` (Settings.ray_address) set, `start_ray` attaches to that cluster; without it,
it starts a Ray on this machine with `FORECASTER_RAY_NUM_CPUS` CPUs (default all) and no
dashboard. Ray missing or failing to start is one `EngineUnavailable` error naming the setting.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from forecaster.runtime.progress import Progress

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")
# How often Ray reruns a task, a trial or a training run whose worker process or node died
# (SIGKILL, OOM kill, a lost machine). Our tasks are pure functions of their inputs, so a rerun
# gives the same result. An exception raised by the work itself is never retried: it is a bug
# or bad input, and rerunning it would only repeat it. See docs/ray.md, "When a worker is lost".
NODE_LOSS_RETRIES = 3


class EngineUnavailable(ValueError):
    """The `ray` engine was asked for but Ray is not installed or cannot start or attach."""


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise ValueError(
            f"engine must be one of {', '.join(ENGINES)} (FORECASTER_ENGINE / --engine), got {engine!r}"
        )
    return engine


def start_ray(address: str | None = None, num_cpus: int | None = None):
    """The `ray` module, initialised once per process: attached to `address`, or started here.

    `address=None` reads RAY_ADDRESS (as Settings does); an empty one starts a local Ray.
    """
    ray = _import_ray()
    if ray.is_initialized():
        return ray
    address = os.environ.get("RAY_ADDRESS") if address is None else address
    started = time.perf_counter()
    if address:
        _check_reachable(address)  # ray.init would retry an unreachable address for minutes
    try:
        _init_ray(ray, address, num_cpus)
    except Exception as exc:  # ConnectionError, RuntimeError, TimeoutError, ...: all mean "no Ray"
        raise _unavailable(exc, address) from None
    resources = ray.cluster_resources()
    log.info(
        "ray: %s, %d CPUs, %d GPUs, ready in %.1f s",
        f"attached to {address}" if address else "started on this machine",
        int(resources.get("CPU", 0)),
        int(resources.get("GPU", 0)),
        time.perf_counter() - started,
    )
    return ray


def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise EngineUnavailable(
            f"FORECASTER_ENGINE=ray (--engine ray) needs Ray, which is not installed ({exc}); "
            "install the project with `make install`, or use FORECASTER_ENGINE=local"
        ) from None
    return ray


def _init_ray(ray, address: str | None, num_cpus: int | None) -> None:
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    else:
        # address="local": a fresh Ray here even when a RAY_ADDRESS is set for someone else.
        ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )


def _unavailable(exc: Exception, address: str | None) -> EngineUnavailable:
    """Why Ray did not start or attach, naming where (and the token settings when it was auth)."""
    where = f"the Ray cluster at RAY_ADDRESS={address}" if address else "a local Ray (RAY_ADDRESS unset)"
    cause = exc.__cause__ or exc.__context__
    because = f" ({type(cause).__name__}: {str(cause).splitlines()[0][:300]})" if cause else ""
    if "auth" in f"{exc} {cause}".lower():
        because += "; a cluster with token authentication needs RAY_AUTH_MODE=token and its RAY_AUTH_TOKEN"
    return EngineUnavailable(
        f"FORECASTER_ENGINE=ray: cannot start or attach to {where}: {type(exc).__name__}: {exc}{because}"
    )


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast, naming RAY_ADDRESS, when nothing listens at `address` (host:port or ray://host:port)."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        raise EngineUnavailable(
            f"FORECASTER_ENGINE=ray: cannot start or attach to the Ray cluster at RAY_ADDRESS={address}: "
            f"nothing answers there ({type(exc).__name__}: {exc})"
        ) from None


def use_engine(settings) -> str:
    """The engine of `settings` (FORECASTER_ENGINE), with Ray started or attached when it is `ray`.

    Jobs call this first, so a cluster that cannot be reached fails before any work.
    """
    engine = check_engine(settings.engine)
    if engine == "ray":
        start_ray(settings.ray_address or "", settings.ray_num_cpus)
    return engine


def map_tasks(
    fn: Callable,
    items: Iterable,
    engine: str = "local",
    *,
    shared: dict[str, Any] | None = None,
    num_cpus: float = 1,
    num_gpus: float = 0,
    desc: str | None = None,
) -> list:
    """`[fn(item, **shared) for item in items]`, here or as one Ray task per item; results in order.

    `fn` must be importable (a module-level function) and pure: on Ray it runs in another
    process, perhaps on another machine, and sees only its arguments. Every task's end is
    reported as it happens, with the count done and an ETA (`forecaster.runtime.progress`,
    under `desc`, default the function's name), when there is more than one.
    """
    items, shared = list(items), shared or {}
    check_engine(engine)
    progress = Progress(
        desc or fn.__name__, len(items), unit="task", enabled=None if len(items) > 1 else False, interval=0
    )
    try:
        if engine == "local":
            results = [_counted(fn(item, **shared), progress) for item in items]
        else:
            results = _ray_tasks(fn, items, shared, num_cpus, num_gpus, progress)
    except BaseException:
        progress.close(ok=False)
        raise
    progress.close()
    return results


def _counted(result, progress: Progress):
    progress.advance()
    return result


def _ray_tasks(fn: Callable, items: list, shared: dict, num_cpus: float, num_gpus: float, progress) -> list:
    """One Ray task per item, collected as they finish (not in order), returned in order."""
    ray = start_ray()
    refs = {name: ray.put(value) for name, value in shared.items()}  # once, not once per task
    remote = ray.remote(fn).options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=NODE_LOSS_RETRIES)
    pending = {remote.remote(item, **refs): i for i, item in enumerate(items)}
    results: list = [None] * len(items)
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            results[pending.pop(ref)] = ray.get(ref)  # a failed task raises here, as ray.get would
            progress.advance()
    return results


class RateLimit:
    """One rate limit for every process of a job: `wait()` blocks until the caller may go.

    Local (engine `local`) it spaces the calls of this process; on Ray it is one actor that
    hands out reservations (a token bucket with no burst), so all workers together stay under
    `per_second`. The actor only says how long to wait; callers sleep on their own side.
    """

    def __init__(self, per_second: float, engine: str = "local"):
        if per_second <= 0:
            raise ValueError(f"rate limit must be > 0 per second, got {per_second}")
        self.per_second, self.engine = per_second, check_engine(engine)
        self._actor = None
        self._next, self._granted = 0.0, 0  # the local clock (engine `local`)
        if engine == "ray":
            ray = start_ray()
            self._actor = ray.remote(_Reservations).options(num_cpus=0).remote(per_second)

    def wait(self, sleep: Callable[[float], None] = time.sleep) -> float:
        """Sleep until this call's slot; returns the seconds waited."""
        if self._actor is not None:
            import ray

            delay = ray.get(self._actor.reserve.remote())
        else:
            delay = _reserve(self, self.per_second)
        if delay > 0:
            sleep(delay)
        return delay

    def granted(self) -> int:
        """How many slots were handed out (on Ray: by the actor, to every worker)."""
        if self._actor is not None:
            import ray

            return ray.get(self._actor.granted.remote())
        return self._granted


def _reserve(state, per_second: float) -> float:
    """Reserve the next free slot of a bucket without burst: the delay until it starts."""
    now = time.monotonic()
    start = max(now, state._next)
    state._next = start + 1.0 / per_second
    state._granted += 1
    return start - now


class _Reservations:
    """The rate limit's Ray actor: one clock for the whole cluster."""

    def __init__(self, per_second: float):
        self.per_second, self._next, self._granted = per_second, 0.0, 0

    def reserve(self) -> float:
        return _reserve(self, self.per_second)

    def granted(self) -> int:
        return self._granted


def map_frames(
    worker: Callable[..., Callable[[Any], Any]],
    frames: Sequence,
    engine: str = "local",
    *,
    init: dict[str, Any] | None = None,
):
    """`worker(**init)` applied to every pandas frame, the results concatenated (a pandas frame).

    Locally one worker is built and called frame by frame. On Ray the frames become the blocks
    of a Ray Data dataset, mapped by a fixed pool of actors (one per frame, at most the cluster's
    CPUs, one CPU each), each built once with `init` and called with whole blocks, so a frame is
    never cut. Rows come back in the frames' order on both engines.
    """
    import pandas as pd

    init = init or {}
    if not frames:
        raise ValueError("map_frames needs at least one frame")
    if check_engine(engine) == "local":
        apply = worker(**init)
        return pd.concat([apply(frame) for frame in frames], ignore_index=True)
    start_ray()
    import ray.data

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # rows in the frames' order, as locally
    context.enable_progress_bars = sys.stderr.isatty()
    pool = min(len(frames), cluster_cpus(engine))
    mapped = ray.data.from_pandas(list(frames)).map_batches(
        worker,
        batch_size=None,  # whole blocks: one frame per call
        batch_format="pandas",
        fn_constructor_kwargs=init,
        compute=ray.data.ActorPoolStrategy(size=pool),
        num_cpus=1,
    )
    return mapped.to_pandas()


def shards(items: Sequence, n: int) -> list[list]:
    """`items` cut into at most `n` contiguous, nearly equal parts (none empty), in order."""
    n = max(1, min(n, len(items)))
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        stop = start + size + (i < extra)
        out.append(list(items[start:stop]))
        start = stop
    return out


def cluster_cpus(engine: str) -> int:
    """CPUs the engine can use at once: this machine's locally, the cluster's on Ray."""
    if check_engine(engine) == "local":
        return os.cpu_count() or 1
    return int(start_ray().cluster_resources().get("CPU", 1))
