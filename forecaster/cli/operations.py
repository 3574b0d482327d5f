"""Operations: serve the API, ingest prices, run the scheduler, list job runs."""

from __future__ import annotations

from typing import Annotated

import typer

from forecaster.cli.common import EngineOpt, engine_settings, exec_job, friendly_errors
from forecaster.cli.render import print_runs, say
from forecaster.config import Settings


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the API.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (each loads the model once).")] = 1,
) -> None:
    """Serve the prediction API (FastAPI on uvicorn); OpenAPI docs at /docs.

    The model comes from FORECASTER_MODEL_URI (default models:/fcm-lstm@champion, hot-reloaded
    when the alias moves; a local model directory works too).

    Examples:

      forecaster serve --port 8000 --workers 2

      FORECASTER_API_KEYS=secret1,secret2 forecaster serve --host 0.0.0.0
    """
    # `python -m service` exits non-zero when it cannot serve (a bad model path: 2, a failed
    # worker start: 3), which plain uvicorn does not with several workers.
    exec_job("service", "--host", host, "--port", str(port), "--workers", str(workers))


@friendly_errors
def ingest(
    full: Annotated[bool, typer.Option("--full", help="Re-download every ticker's whole history.")] = False,
    engine: EngineOpt = None,
) -> None:
    """Download the universe's daily bars from Yahoo Finance into the price store.

    Incremental: only the days after what the store holds (re-reading a few days to catch
    revisions), with retries on rate limits and network errors. A failing ticker is reported
    and the others go on; the exit code is 1 when more than FORECASTER_INGEST_MAX_FAILURE_SHARE
    of them fail. Runs `python -m pipelines.ingest`.

    Examples:

      FORECASTER_UNIVERSE='["AAPL","MSFT","^GSPC"]' forecaster ingest

      FORECASTER_UNIVERSE_FILE=universe.txt forecaster ingest --full

      forecaster ingest --engine ray   # parallel downloads, FORECASTER_INGEST_MAX_RATE per second in all
    """
    from forecaster.data.universe import universe_tickers  # here: `--help` need not load pandas

    settings = engine_settings(engine)
    say(f"[dim]ingesting {len(universe_tickers(settings))} tickers into {settings.price_dir}[/]")
    exec_job("pipelines.ingest", *(["--full"] if full else []), *(["--engine", engine] if engine else []))


@friendly_errors
def batch_forecast(
    as_of: Annotated[
        str | None, typer.Option(help="Forecast from the bars of this day (YYYY-MM-DD); default the latest.")
    ] = None,
    engine: EngineOpt = None,
) -> None:
    """Forecast every ticker of the universe with the champion into the forecast store.

    What the scheduler runs after ingest: one row per ticker and horizon, every quantile at the
    ticker's adaptive-conformal levels, its regime; a stale ticker is skipped and reported, a
    re-run of a day writes nothing new. Runs `python -m pipelines.batch_forecast`.

    Examples:

      forecaster batch-forecast

      forecaster batch-forecast --as-of 2018-12-28

      RAY_ADDRESS=ray-head:6379 forecaster batch-forecast --engine ray   # shards on Ray actors
    """
    engine_settings(engine)  # a bad FORECASTER_ENGINE fails here, in one line
    args = (["--as-of", as_of] if as_of else []) + (["--engine", engine] if engine else [])
    exec_job("pipelines.batch_forecast", *args)


@friendly_errors
def schedule() -> None:
    """Run the scheduler: ingest + batch forecast after the US close on trading days, retrain weekly.

    Cron lines come from FORECASTER_SCHEDULE_DAILY (default "30 18 * * mon-fri") and
    FORECASTER_SCHEDULE_RETRAIN ("0 6 * * sat") in FORECASTER_SCHEDULE_TIMEZONE
    (America/New_York); exchange holidays are skipped. One instance of a job at a time, also
    across processes sharing the forecast store. SIGTERM finishes the running step and exits.
    Runs `python -m pipelines.scheduler`.

    Examples:

      forecaster schedule

      FORECASTER_FORECAST_STORE_URL=postgresql://postgres@127.0.0.1/forecasts forecaster schedule
    """
    from forecaster.data.universe import universe_tickers

    settings = Settings()
    universe_tickers(settings)  # a bad universe fails now, not at 18:30
    exec_job("pipelines.scheduler")


@friendly_errors
def runs(
    limit: Annotated[int, typer.Option(help="How many runs to show.")] = 20,
    job: Annotated[str | None, typer.Option(help="Only this job: ingest, batch_forecast or retrain.")] = None,
) -> None:
    """List recent job runs (ingest, batch forecast, retrain) from the forecast store.

    Examples:

      forecaster runs

      forecaster runs --job batch_forecast --limit 5
    """
    from forecaster import forecast_store

    settings = Settings()
    rows = forecast_store.recent_runs(forecast_store.connect(settings.forecast_store_url), limit, job)
    if not rows:
        say("no job runs recorded yet")
        return
    print_runs(rows)
