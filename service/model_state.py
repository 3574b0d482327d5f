"""The served model: loaded once at start-up, swapped atomically when the registry alias moves.

Requests read `state.current` once and keep that reference, so a swap never changes the model
under a request in flight; the old model is freed when the last such request finishes.

The registry is never needed to start or keep serving. Every model loaded from it is copied to
`serving-cache/<name>/<version>/` under FORECASTER_HOME (the alias points there from
`serving-cache/<name>/@<alias>.json`); when the registry cannot be reached at start-up (a worker
restarted during an outage) that copy is served and reported as `source: cache`, and the
registry is retried in the background until it answers. With neither, the process stays up,
/readyz answers 503 saying what is missing, and the retries go on: an orchestrator sees "not
ready", not a crash loop. Only a FORECASTER_MODEL_URI that is a local path and no model
directory stops the start (no retry can fix it).

A registered version whose files fail the checksum recorded at registration is never served; a
cached copy is checked against that checksum (stored beside it) before it is served, and the
registry's own record once it answers (see service.serving_cache). A refused version is
remembered by (name, version, checksum): the polls do not download and hash it again, nor log it
again; a new version, an alias move or a new checksum is tried. (Files repaired in place under
the same checksum are picked up by a restart.)
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from forecaster.data.sessions import future_sessions
from forecaster.model import FuzzyLSTMForecaster
from forecaster.runtime.redact import mask_credentials
from forecaster.tracking import ModelIntegrityError
from service.serving_cache import (
    RegisteredVersion,
    download_verified,
    read_entry,
    read_forecaster,
    registered_version,
    write_entry,
)

log = logging.getLogger("service.model")


@dataclass(frozen=True)
class LoadedModel:
    forecaster: FuzzyLSTMForecaster
    uri: str
    name: str
    version: str | None
    alias: str | None
    run_id: str | None
    source: str = "registry"  # "registry"; "cache": the registry was unreachable; "directory"
    checksum: str | None = None  # SHA-256 of the registered files it was read from (not for "directory")
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def is_registry_uri(uri: str) -> bool:
    return uri.startswith("models:/")


def local_model_problem(uri: str) -> str | None:
    """Why a FORECASTER_MODEL_URI that is no registry URI cannot be served, or None."""
    if is_registry_uri(uri) or (Path(uri) / "metadata.json").is_file():
        return None
    return (
        f"FORECASTER_MODEL_URI={uri!r} is neither a model directory (no metadata.json there) "
        "nor a registry URI (models:/<name>@<alias> or models:/<name>/<version>)"
    )


def load(uri: str, default_name: str, cache_dir: Path | None = None) -> LoadedModel:
    """A local model directory, or a registry URI (`models:/name@alias`, `models:/name/3`).

    A registry model is also copied under `cache_dir` (when given), to serve through outages.
    """
    if not is_registry_uri(uri):
        if problem := local_model_problem(uri):
            raise FileNotFoundError(problem)
        loaded = LoadedModel(FuzzyLSTMForecaster.load(uri), uri, default_name, None, None, None, "directory")
        warm_up(loaded.forecaster)
        return loaded
    return load_version(registered_version(uri), uri, cache_dir)


def load_version(version: RegisteredVersion, uri: str, cache_dir: Path | None = None) -> LoadedModel:
    """Download, verify (ModelIntegrityError), load and warm a registered version; then cache it.

    The exact version resolved is loaded, so the version we report is the one we serve.
    """
    with tempfile.TemporaryDirectory(prefix="forecaster-model-") as tmp:
        files = download_verified(version, Path(tmp))
        model = read_forecaster(files)
        warm_up(model)
        loaded = LoadedModel(model, uri, version.name, version.version, version.alias, version.run_id,
                             checksum=version.checksum)  # fmt: skip
        if cache_dir is not None:
            try:
                write_entry(cache_dir, version, files)
            except OSError as exc:  # a full disk costs the fallback, not the model just loaded
                log.warning(
                    "could not cache %s v%s under %s: %s", version.name, version.version, cache_dir, exc
                )
    return loaded


def load_cached(cache_dir: Path, uri: str) -> LoadedModel | None:
    """The cached copy of what registry `uri` pointed at when last loaded, or None when there is none.

    Raises ModelIntegrityError for a copy whose files do not match the checksum recorded with it.
    """
    copy = read_entry(cache_dir, uri)
    if copy is None:
        return None
    warm_up(copy.forecaster)
    return LoadedModel(copy.forecaster, uri, copy.name, copy.version, copy.alias, copy.run_id, "cache",
                       checksum=copy.checksum)  # fmt: skip


def warm_up(model: FuzzyLSTMForecaster) -> None:
    """One prediction on a synthetic window: first-call costs (allocations, the calendar) happen now."""
    from forecaster.features.windows import window_from_arrays

    if model.config.window.market is not None:
        return  # a model with market context answers each request with a 422 saying why: nothing to warm
    n = model.config.window.window + 1
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    arrays = {
        "date": np.arange(np.datetime64("2024-01-02"), np.datetime64("2024-01-02") + n),
        "adj_close": close, "high": close * 1.01, "low": close * 0.99, "volume": np.full(n, 1e6),
    }  # fmt: skip
    window = window_from_arrays("WARMUP", arrays, model.config.window)
    model.predict_windows(window)
    future_sessions(window.origin, model.config.window.horizon, model.config.window.calendar)


def _describe(exc: BaseException) -> str:
    """One line about a registry failure, fit for /readyz: credentials masked, length bounded."""
    return mask_credentials(f"{type(exc).__name__}: {exc}")[:300]


class ModelState:
    """Holds the current model; loads it from the registry, or its cached copy during an outage."""

    def __init__(self, settings):
        self.settings = settings
        self.uri, self.default_name = settings.model_uri, settings.model_name
        self.cache_dir: Path = settings.serving_cache_dir
        self.current: LoadedModel | None = None
        self.registry = "not polled"
        self.registry_checked_at: datetime | None = None
        self.cache_note = ""  # why no cached copy was served, when none was
        self._configured = False
        # (name, version, checksum) -> why it was refused: polls skip these, unlogged
        self._refused: dict[tuple[str, str, str | None], str] = {}

    @property
    def uses_registry(self) -> bool:
        return is_registry_uri(self.uri)

    @property
    def polls_registry(self) -> bool:
        return self.uses_registry and "@" in self.uri

    def problem(self) -> str:
        """What is missing to serve, for /readyz and 503s (no credentials in it)."""
        if not self.uses_registry:
            return f"model directory {self.uri} did not load"
        retry = f"retrying every {self.settings.registry_retry_s:g} s"
        return f"registry {self.registry}; {self.cache_note or 'no cached copy'}; {retry}"

    def _configure(self) -> None:
        from forecaster import tracking

        if not self._configured:  # configure() asks the server (experiment lookup): retried until it answers
            tracking.configure(self.settings)
            self._configured = True

    def load_initial(self) -> None:
        """Load the model to serve at start-up. Never raises for the registry; see the module docstring.

        Raises for a local model directory that does not load: that process can never serve.
        """
        if not self.uses_registry:
            self.current = load(self.uri, self.default_name)
            log.info("serving the model directory %s", self.uri)
            return
        version = None
        try:
            self._configure()
            version = registered_version(self.uri)
            self.current = self._load(version)
            self.registry = "ok"
            log.info("serving %s v%s from %s", self.current.name, self.current.version, self.uri)
        except Exception as exc:  # the service still starts; /readyz says why it is not ready
            answered = getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"
            refused = isinstance(exc, ModelIntegrityError)  # files changed since registration
            what = "refused the model" if refused else "has no such model" if answered else "unreachable"
            self.registry = f"{what}: {_describe(exc)}"
            if refused and version is not None:
                self._refused[version.key] = self.registry
            log.error("could not load %s: %s", self.uri, self.registry)
            # A registry that answered "no such model", or a model that fails its checksum, is
            # obeyed; the cache covers outages only.
            if not (answered or refused):
                self.current = self._from_cache()
        self.registry_checked_at = datetime.now(UTC)

    def _load(self, version: RegisteredVersion) -> LoadedModel:
        return load_version(version, self.uri, self.cache_dir)

    def _from_cache(self) -> LoadedModel | None:
        try:
            cached = load_cached(self.cache_dir, self.uri)
        except Exception as exc:  # a damaged copy is no reason to crash: report it, keep retrying
            self.cache_note = f"the cached copy did not load: {_describe(exc)}"
            log.error("%s", self.cache_note)
            return None
        if cached is None:
            self.cache_note = f"no cached copy of {self.uri}"
            return None
        self.cache_note = ""
        log.warning(
            "serving the cached copy of %s v%s until the registry answers", cached.name, cached.version
        )
        return cached

    def check_once(self) -> bool:
        """Load and swap in the version the alias points at, if it moved. Blocking; True on swap."""
        try:
            self._configure()
            version = registered_version(self.uri)
        except Exception as exc:
            self.registry = f"unreachable: {_describe(exc)}"
            self.registry_checked_at = datetime.now(UTC)
            log.warning("registry check failed, keeping the current model: %s", self.registry)
            return False
        self.registry, self.registry_checked_at = "ok", datetime.now(UTC)
        if refusal := self._refused.get(version.key):  # said once already: not downloaded again
            self.registry = refusal
            return False
        current = self.current
        if current is not None and (current.name, current.version) == (version.name, version.version):
            if current.source != "cache":
                return False
            if (
                current.checksum == version.checksum
            ):  # the registry's record: the copy is the registered model
                self.current = replace(current, source="registry", run_id=version.run_id)
                return True
            log.warning(
                "the cached copy of %s v%s is not what the registry recorded (SHA-256 %.16s..., registry "
                "%.16s...): loading it from the registry", version.name, version.version,
                current.checksum, version.checksum,
            )  # fmt: skip
        try:
            fresh = self._load(version)  # loaded and warmed beside the old one
        except Exception as exc:
            refused = isinstance(exc, ModelIntegrityError)
            self.registry = (
                f"ok, but v{version.version} {'was refused' if refused else 'did not load'}: {_describe(exc)}"
            )
            if refused:
                self._refused[version.key] = self.registry
            log.error("%s; still serving v%s", self.registry, current.version if current else None)
            return False
        old, self.current = self.current, fresh  # one reference assignment: atomic for readers
        log.info("now serving v%s (was v%s)", fresh.version, old.version if old else None)
        return True
