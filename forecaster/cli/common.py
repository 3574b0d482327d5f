"""What the verbs share: one-line errors, the options that read bars, config from options or a file."""

from __future__ import annotations

import errno
import functools
import json
import os
import sys
import traceback
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.markup import escape

from forecaster.cli.render import err_console, say
from forecaster.config import (
    CONTEXT,
    CONTEXT_DESCRIPTORS,
    ClusterConfig,
    ForecasterConfig,
    Settings,
    WindowConfig,
)
from forecaster.runtime.logs import is_verbose
from forecaster.runtime.paths import NotWritableError
from forecaster.runtime.redact import mask_credentials

# Mistakes a user can fix (bad data, options, files, devices): one line and exit code 2.
EXPECTED_ERRORS: tuple[type[Exception], ...] = (ValueError, FileNotFoundError, KeyError)


def fail(message: object, code: int = 2) -> None:
    """Print `error: message` (the traceback first when verbose) and exit with `code`.

    Credentials in the message and the traceback are masked (`user:***@host`). SystemExit, not
    typer.Exit: the jobs in `pipelines/` end their errors here too.
    """
    if is_verbose() and sys.exc_info()[0] is not None:
        sys.stderr.write(mask_credentials(traceback.format_exc()))
    # Piped (logs, grep): one line, however long. On a terminal: wrapped between words, not mid-word.
    wrap = err_console.is_terminal
    err_console.print(
        f"[bold red]error:[/] {escape(mask_credentials(message))}",
        highlight=False,
        soft_wrap=not wrap,
        overflow="fold" if wrap else None,  # a path longer than the line is folded, not cut
    )
    sys.exit(code)


def describe_error(exc: BaseException) -> tuple[str, int]:
    """The one line and exit code of a failure: 2 for a mistake the user can fix, 1 otherwise.

    A tracking server or database that cannot be reached, and a full or read-only disk, are
    said in words that name the URI or the folder; anything else (a bug) by its type and
    message. `fail` masks the credentials.
    """
    from forecaster.data import DataSourceError

    if isinstance(exc, (*EXPECTED_ERRORS, DataSourceError, NotWritableError)):
        return str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc), 2
    line = _environment_problem(exc)
    if line is not None:
        return line, 1
    hint = "" if is_verbose() else " (run with --verbose for the traceback)"
    return f"{type(exc).__name__}: {exc}{hint}", 1


def _environment_problem(exc: BaseException) -> str | None:
    """One line for MLflow out of reach, a database error or a disk problem; None for others."""
    if type(exc).__module__.startswith(("mlflow", "requests", "urllib3")):
        from forecaster.tracking.setup import unreachable_line

        return unreachable_line(exc)
    if type(exc).__module__.startswith("sqlalchemy"):
        from forecaster.forecast_store.jobs import store_error_line

        return store_error_line(exc)
    if isinstance(exc, OSError) and exc.errno in DISK_PROBLEMS and exc.filename:
        return f"cannot write to {exc.filename}: {DISK_PROBLEMS[exc.errno]}"
    return None


DISK_PROBLEMS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied (read-only folder?)",
}


def friendly_errors(func):
    """Expected failures end in one clear line and exit code 2; anything else in one line and 1.

    `--verbose` (or FORECASTER_VERBOSE=1) prints the traceback too.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.BadParameter):  # Typer's own ways out
            raise
        except Exception as exc:  # a bug or an environment problem: still no traceback by default
            fail(*describe_error(exc))

    return wrapper


# Options shared by the verbs that read bars.
SourceOpt = Annotated[
    str,
    typer.Option(
        help="Where bars come from: 'sample' (bundled S&P 500 / NASDAQ), 'cache' (the price "
        "store), 'yahoo', or a CSV/Parquet file or folder in yfinance's layout."
    ),
]
TickersOpt = Annotated[
    list[str] | None, typer.Option("--ticker", "-t", help="Ticker to use (repeatable); default all.")
]
StartOpt = Annotated[str | None, typer.Option(help="First date (YYYY-MM-DD).")]
EndOpt = Annotated[str | None, typer.Option(help="Last date (YYYY-MM-DD).")]
EngineOpt = Annotated[
    str | None,
    typer.Option(
        help="Where the work runs: 'local' (this process) or 'ray' (the cluster at RAY_ADDRESS, "
        "else a Ray started here). Default FORECASTER_ENGINE, else local."
    ),
]


class Refit(StrEnum):
    """--refit's choices: `forecaster.walkforward.REFITS`, named here so start-up imports none of it."""

    cold = "cold"
    warm = "warm"


def engine_settings(engine: str | None) -> Settings:
    """Settings with --engine (when given) over FORECASTER_ENGINE."""
    return Settings(engine=engine) if engine else Settings()


PlotTickersOpt = Annotated[
    str | None,
    typer.Option(help="Comma-separated tickers to plot (default: every ticker, at most the first 10)."),
]
SOURCES = ("sample", "cache", "yahoo")


def split_tickers(value: str | None) -> list[str] | None:
    """`"^GSPC, AAPL"` -> `["^GSPC", "AAPL"]`; None or "" -> None."""
    tickers = [t.strip() for t in (value or "").split(",") if t.strip()]
    return tickers or None


def load(
    source: str, tickers, start, end, settings: Settings, *, strict: bool = False, option: str = "--source"
):
    """Bars from a source, with a short summary of what was read and of any quarantined ticker."""
    from forecaster.data import load_bars

    if source not in SOURCES and not Path(source).exists():
        raise FileNotFoundError(
            f"{option} {source}: no such file or folder"
            + (f" (or use one of {', '.join(SOURCES)})" if option == "--source" else "")
        )
    bars = load_bars(source, tickers or None, start, end, price_dir=settings.price_dir, strict=strict)
    names = sorted(bars["ticker"].unique())
    shown = ", ".join(names) if len(names) <= 8 else f"{', '.join(names[:4])}, ... {', '.join(names[-2:])}"
    say(
        f"[dim]{len(bars):,} bars of {len(names)} ticker(s) ({shown}) "
        f"from {bars['date'].min().date()} to {bars['date'].max().date()}[/]"
    )
    report = bars.attrs.get("quarantine")
    if report is not None and not report.empty:
        err_console.print(
            f"[yellow]quarantined (left out; --strict stops instead):[/]\n{escape(str(report))}"
        )
    return bars


StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict", help="Stop at the first ticker that fails validation instead of leaving it out."
    ),
]


def sample_tickers(bars, n: int, seed: int):
    """The bars of `n` tickers drawn at random (seeded), so a sample can be drawn again."""
    tickers = sorted(bars["ticker"].unique())
    if n >= len(tickers):
        return bars
    chosen = np.random.default_rng(seed).choice(tickers, n, replace=False)
    say(f"[dim]sampled {n} of {len(tickers)} tickers: {', '.join(sorted(chosen))}[/]")
    return bars[bars["ticker"].isin(chosen)]


def parse_clusters(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"--clusters must be an integer >= 2 or 'auto', got {value!r}") from None


def check_device(device: str) -> None:
    """Fail now, before any data is read or clusters fitted, when the device cannot be used."""
    if device != "auto":
        from forecaster.experts.devices import resolve_device  # imports torch: only when a device is named

        resolve_device(device)


# Command-line option -> (section, key) of ForecasterConfig.to_dict(), the keys of config.json.
OPTION_KEYS = {
    "window": ("window", "window"),
    "horizon": ("window", "horizon"),
    "features": ("window", "features"),
    "clusters": ("cluster", "n_clusters"),
    "fuzzifier": ("cluster", "m"),
    "hidden": ("expert", "hidden_size"),
    "layers": ("expert", "num_layers"),
    "epochs": ("train", "epochs"),
    "patience": ("train", "patience"),
    "batch_size": ("train", "batch_size"),
    "lr": ("train", "lr"),
    "fine_tune_epochs": ("train", "fine_tune_epochs"),
    "warm_epochs": ("train", "warm_epochs"),
    "device": ("train", "device"),
    "seed": ("train", "seed"),
}


def read_config_file(path: Path) -> dict[str, Any]:
    """A model configuration file: TOML, YAML or JSON (a saved model's config.json), same keys."""
    if not path.is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise ValueError("use a .toml, .yaml, .yml or .json file")
    except ValueError as exc:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        raise ValueError(f"--config {path}: {exc}") from None
    except Exception as exc:  # yaml.YAMLError
        raise ValueError(f"--config {path}: {type(exc).__name__}: {exc}") from None
    known = ForecasterConfig().to_dict()
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected sections {', '.join(known)}")
    for section, values in data.items():
        if section not in known or not isinstance(values, dict):
            raise ValueError(f"--config {path}: unknown section {section!r}; sections: {', '.join(known)}")
        for key in set(values) - set(known[section]):
            raise ValueError(
                f"--config {path}: unknown key {section}.{key}; keys: {', '.join(known[section])}"
            )
    return data


def _given_on_command_line(ctx: typer.Context | None, names) -> set[str]:
    """The options the user typed (or set through the environment), not those left at their default."""
    if ctx is None:  # called from Python: every value passed counts
        return set(names)
    return {n for n in names if ctx.get_parameter_source(n).name in ("COMMANDLINE", "ENVIRONMENT")}


def build_config(
    config_file: Path | None = None, ctx: typer.Context | None = None, **options: Any
) -> ForecasterConfig:
    """The model configuration from command-line options, over a config file when one is given.

    Without a file every option (its default too) sets its key; with one, only the options given
    on the command line (`ctx` knows which) override the file, and keys neither sets keep the
    dataclass defaults.
    """
    if options.get("window", 5) < 5:
        raise ValueError(f"--window must be >= 5 trading days, got {options['window']}")
    if options.get("horizon", 1) < 1:
        raise ValueError(f"--horizon must be >= 1 trading day, got {options['horizon']}")
    data = read_config_file(config_file) if config_file else {}
    given = _given_on_command_line(ctx, options) if config_file else set(options)
    for name in given & set(OPTION_KEYS):
        value = options[name]
        if name == "clusters":
            value = parse_clusters(value)
        elif name == "features":
            value = value.split(",")
        section, key = OPTION_KEYS[name]
        data.setdefault(section, {})[key] = value
        if name == "seed":
            data.setdefault("cluster", {})["random_state"] = value
    if options.get("market") and "market" in given:
        _with_market(data, options["market"], bool(options.get("context_inputs")))
    try:
        return ForecasterConfig.from_dict(data)
    except ValueError as exc:
        raise ValueError(f"--config {config_file}: {exc}" if config_file else exc) from None


def _with_market(data: dict[str, Any], market: str, context_inputs: bool) -> None:
    """--market: the gate also reads the market's state; --context-inputs: the experts too.

    Descriptors or features a config file names are kept as written.
    """
    window, cluster = data.setdefault("window", {}), data.setdefault("cluster", {})
    window["market"] = market
    cluster.setdefault("descriptors", [*ClusterConfig.descriptors, *CONTEXT_DESCRIPTORS])
    if context_inputs:
        features = window.get("features", WindowConfig.features)
        window["features"] = [*features, *(c for c in CONTEXT if c not in features)]


def with_market_ticker(tickers: list[str] | None, market: str | None) -> list[str] | None:
    """The tickers to load: the market index's bars travel with the universe's."""
    if not tickers or market in (None, "universe") or market in tickers:
        return tickers
    return [*tickers, market]


def exec_job(module: str, *args: str) -> None:
    """Replace this process with `python -m <module>` (a job in `pipelines/`).

    `forecaster/` never imports `pipelines/`; exec (not a child process) also lets SIGTERM
    from a supervisor reach the job itself.
    """
    command = [sys.executable, "-m", module, *args]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)
