"""Batch forecast job: the champion forecasts every ticker of the universe into the forecast store.

Usage:
    python -m pipelines.batch_forecast                    # embedded defaults (after `forecaster quickstart`)
    python -m pipelines.batch_forecast --as-of 2018-12-28
    python -m pipelines.batch_forecast --engine ray        # ticker shards on Ray Data actors (RAY_ADDRESS)
    FORECASTER_FORECAST_STORE_URL=postgresql://postgres@127.0.0.1/forecasts python -m pipelines.batch_forecast

Reads the universe's bars from the price store (FORECASTER_HOME/prices), forecasts the latest
window of every ticker in one batched model call, and writes one row per ticker and horizon to
the forecast store in one transaction. The as-of date defaults to the latest day present in
the bars; a ticker without a bar on that day (stale) or with too little history is skipped and
reported, never forecast from old data. Re-running writes nothing new. Every run is recorded in
`job_runs` (see `forecaster runs`). Exit code 0 when rows were written or already there.

Each row holds every quantile (served through adaptive conformal inference) and the ticker's
regime: dominant cluster, its label and whether it shifted from the trailing 20 days. Before
forecasting as of day D, each ticker's ACI state learns the outcomes of its stored forecasts
whose target dates are in (updated_through, D]; the state is written in the transaction of the
forecasts, so a re-run of D learns nothing twice. A backfill (D before a ticker's
updated_through) is served at the nominal levels: the state already knows later outcomes.

Beside the forecasts, in the same transaction, the joint products of the forecast tickers at every
horizon 1..H (`forecaster.products`, one seeded simulation of 10,000 paths per horizon from the
calibrated quantiles at the nominal levels): each ticker's VaR and ES at alpha 0.01, 0.025 and 0.05
(table `risk`) and, with 5 tickers or more, its quintile rank probabilities (table `ranks`). A
ticker with too few daily returns for the copula is left out of them (and logged).
"""

from __future__ import annotations

import argparse
import logging
import math
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from forecaster import forecast_store, products, serving
from forecaster.calibration.aci import ACIState
from forecaster.cli.common import describe_error, fail
from forecaster.config import Settings
from forecaster.data import DataSourceError, PriceStore
from forecaster.data.universe import universe_tickers
from forecaster.data.validation import as_day
from forecaster.features.windows import latest_windows
from forecaster.joint import DEFAULT_ALPHAS, Copula
from forecaster.runtime.engine import ENGINES, map_frames, shards, use_engine
from forecaster.runtime.logs import setup_logging
from forecaster.runtime.paths import ensure_writable
from forecaster.runtime.placeholders import exit_on_placeholders

log = logging.getLogger("pipelines.batch_forecast")

INTERVAL_COLUMNS = ("lower_80", "upper_80", "lower_95", "upper_95")


@dataclass
class BatchResult:
    as_of: date
    forecast: list[str]  # tickers forecast
    skipped: dict[str, str] = field(default_factory=dict)  # ticker -> why not
    rows_written: int = 0  # new rows; rows already stored are left alone
    rows_total: int = 0
    products_written: dict[str, int] = field(default_factory=dict)  # new `risk` and `ranks` rows


def read_universe(store: PriceStore, tickers: list[str]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Stored bars of `tickers`, and the tickers the store does not hold."""
    stored = set(store.tickers())
    missing = {t: "not in the price store" for t in tickers if t not in stored}
    present = [t for t in tickers if t in stored]
    if not present:
        raise DataSourceError(f"{store}: none of the universe is stored ({', '.join(tickers)}); run ingest")
    return store.read(present), missing


def select_fresh(
    bars: pd.DataFrame, as_of: pd.Timestamp, min_bars: int
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Bars up to `as_of` of the tickers with a bar on `as_of` and at least `min_bars` of them.

    The others are returned with the reason: a forecast from a stale last bar would be
    labelled with a date it never saw.
    """
    skipped: dict[str, str] = {}
    upto = bars[bars["date"] <= as_of]
    for ticker in sorted(set(bars["ticker"].unique()) - set(upto["ticker"].unique())):
        skipped[ticker] = f"no bars on or before {as_of.date()}"
    last = upto.groupby("ticker")["date"].max()
    count = upto.groupby("ticker").size()
    for ticker, day in last[last < as_of].items():
        skipped[ticker] = f"stale: last bar {day.date()}, as of {as_of.date()}"
    for ticker, n in count[(count < min_bars) & (last == as_of)].items():
        skipped[ticker] = f"{n} bars, the model needs {min_bars}"
    return upto[~upto["ticker"].isin(list(skipped))].reset_index(drop=True), skipped


def forecast_rows(
    frame: pd.DataFrame,
    model_name: str,
    model_version: str,
    run_id: str | None,
    created_at,
    levels: tuple[float, ...] = (),
) -> list[dict]:
    """`serving.forecast_frame` output as rows of the `forecasts` table.

    `levels` are the model's quantile levels (their `quantile_<level>` columns go to the
    `quantiles` JSON); the regime columns are stored as they are, when present.
    """
    out = pd.DataFrame(
        {
            "ticker": frame["ticker"].astype(str),
            "as_of": pd.to_datetime(frame["as_of"]).dt.date,
            "horizon": frame["horizon"].astype(int),
            "target_date": pd.to_datetime(frame["target_date"]).dt.date,
            "last_price": frame["last_price"],
            "forecast": frame["forecast"],
        }
    )
    for column in INTERVAL_COLUMNS:  # a model calibrated at other levels leaves these empty
        out[column] = frame[column] if column in frame else None
    out = out.assign(model_name=model_name, model_version=model_version, run_id=run_id, created_at=created_at)
    columns = {serving.level_key(q): f"quantile_{q:g}" for q in levels if f"quantile_{q:g}" in frame}
    prices = frame[list(columns.values())].to_numpy(float)
    out["quantiles"] = [dict(zip(columns, row.tolist(), strict=True)) for row in prices] if columns else None
    for name in serving.REGIME_COLUMNS:
        out[name] = frame[name] if name in frame else None
    return out.astype(object).where(out.notna(), None).to_dict("records")


def fresh_bars(bars: pd.DataFrame, as_of, min_bars: int) -> tuple[pd.DataFrame, BatchResult]:
    """The bars to forecast from as of `as_of` (default the latest day), and what was skipped."""
    if bars.empty:
        raise DataSourceError("no bars to forecast from")
    day = as_day(as_of, "as_of") if as_of is not None else bars["date"].max()
    fresh, skipped = select_fresh(bars, day, min_bars)
    if fresh.empty:
        reasons = "; ".join(f"{t}: {why}" for t, why in skipped.items())
        raise DataSourceError(f"no ticker can be forecast as of {day.date()} ({reasons})")
    return fresh, BatchResult(day.date(), sorted(fresh["ticker"].unique()), skipped)


def learn_aci(engine: Engine, model, model_name: str, fresh: pd.DataFrame, day: date):
    """Each fresh ticker's ACI state after the outcomes known on `day`, and the state rows to store.

    Only tickers whose state was learnt through an earlier day (or never) learn and are stored;
    a re-run of `day` serves the stored state as it is. A ticker learnt through a later day (a
    backfill) is served at the nominal levels. Returns (ACIState, `aci_state` rows).
    """
    levels, horizon = model.levels, model.config.window.horizon
    tickers = sorted(fresh["ticker"].unique())
    records = forecast_store.load_aci_state(engine, model_name, tickers)
    through: dict[str, date] = {}
    for r in records:
        through[r["ticker"]] = max(r["updated_through"], through.get(r["ticker"], r["updated_through"]))
    usable = [r for r in records if through[r["ticker"]] <= day]
    state = serving.aci_state(model, usable)
    learning = {t: through.get(t) for t in tickers if t not in through or through[t] < day}
    due = [
        r
        for r in forecast_store.forecasts_due(engine, model_name, learning, day)
        if r["horizon"] <= horizon  # a model with another horizon has no state for the rest
    ]
    if due:
        first = pd.Timestamp(min(r["target_date"] for r in due))
        known = fresh[fresh["ticker"].isin(list(learning)) & (fresh["date"] >= first)]
        closes = dict(
            zip(zip(known["ticker"], known["date"].dt.date, strict=True), known["adj_close"], strict=True)
        )
        state.update(*serving.aci_outcomes(due, closes, levels))
    for ticker in learning:
        state.levels_of(ticker)  # a ticker with nothing due yet is stored at the nominal levels
    learnt = [r for r in state.to_records() if r["ticker"] in learning]
    return state, forecast_store.aci_records(learnt, model_name, day)


def joint_products(
    model,
    fresh: pd.DataFrame,
    *,
    model_name: str,
    model_version: str,
    created_at,
    context=None,
    state: ACIState | None = None,
):
    """`risk` and `ranks` rows of the fresh tickers at every horizon, and the tickers left out with why.

    The marginals are the quantiles as served, at the ACI working levels of `state` (the forecasts'
    own), so a stored VaR and the stored forecast's quantile at that level agree.

    A universe the joint simulation cannot take (ValueError) gives no rows and one reason, under
    the key "(all)": the forecasts are written all the same.
    """
    returns = products.daily_returns(fresh)
    copula = Copula()
    counts = returns.tail(copula.window).notna().sum()
    left_out = {
        str(t): f"{n} daily returns; the copula needs {copula.min_periods}"
        for t, n in counts.items()
        if n < copula.min_periods
    }
    usable = fresh[~fresh["ticker"].isin(list(left_out))]
    if usable.empty:
        return [], [], left_out
    key = {"model_name": model_name, "model_version": model_version, "created_at": created_at}
    windows = latest_windows(
        usable if context is None else serving.with_context(usable, context), model.config.window
    )
    windows = windows.subset(np.isin(windows.ticker, usable["ticker"].unique()))
    try:
        joints = products.simulate_horizons(
            model, windows, returns,
            horizons=range(1, model.config.window.horizon + 1), n_paths=products.DEFAULT_PATHS, state=state,
        )  # fmt: skip
    except ValueError as exc:
        return [], [], left_out | {"(all)": str(exc)}
    risk_rows, rank_rows = [], []
    for joint in joints:
        day, paths = joint.as_of.date(), len(joint.draws)
        per_ticker, _ = products.risk_tables(joint, alphas=DEFAULT_ALPHAS)
        risk_rows += [
            {"ticker": r["ticker"], "as_of": day, "horizon": joint.horizon, "alpha": r["alpha"],
             "var": r["var"], "es": r["es"], "paths": paths, **key}
            for r in per_ticker.to_dict("records")
        ]  # fmt: skip
        if len(joint.tickers) >= 5:
            table = products.rank_table(joint)
            probabilities = table.drop(columns="ID").to_numpy()  # [N, 5] Rank1..Rank5
            rank_rows += [
                {"ticker": ticker, "as_of": day, "horizon": joint.horizon, "n_tickers": len(joint.tickers),
                 "paths": paths, **{f"rank{k + 1}": float(p[k]) for k in range(5)}, **key}
                for ticker, p in zip(table["ID"], probabilities, strict=True)
            ]  # fmt: skip
    return risk_rows, rank_rows, left_out


def forecast(
    model,
    bars: pd.DataFrame,
    as_of=None,
    *,
    model_name: str,
    model_version: str,
    run_id: str | None = None,
    state: ACIState | None = None,
    compute: str = "local",
    shard_size: int = 64,
    context: pd.DataFrame | None = None,
) -> tuple[list[dict], BatchResult]:
    """Forecast rows of every fresh ticker in `bars`, and what was skipped.

    Quantiles are served at the working levels of `state` (none: the nominal levels). Locally
    the latest windows of all tickers go through the model in one batched call; on Ray
    (`compute="ray"`) shards of `shard_size` tickers go to a pool of actors that each hold the
    model (`engine.map_frames`). A ticker's rows depend on its own bars only: same rows.
    `context`: bars of tickers a market-context model reads but is not asked to forecast
    (`serving.context_tickers`); such a model's context spans tickers, so it is never sharded.
    """
    config = model.config
    fresh, result = fresh_bars(bars, as_of, config.window.window + 1)
    state = state or serving.aci_state(model)
    if context is not None:
        frame = serving.forecast_frame(model, serving.with_context(fresh, context), state)
        frame = frame[frame["ticker"].isin(result.forecast)].reset_index(drop=True)
    elif compute == "local":
        frame = serving.forecast_frame(model, fresh, state)
    else:
        tail = fresh.groupby("ticker", sort=True).tail(serving.history_to_serve(model))
        tickers = sorted(tail["ticker"].unique())
        parts = shards(tickers, math.ceil(len(tickers) / shard_size))
        frames = [tail[tail["ticker"].isin(part)].reset_index(drop=True) for part in parts]
        frame = map_frames(serving.ShardForecaster, frames, compute, init={"model": model, "state": state})
    created = forecast_store.utcnow()
    rows = forecast_rows(frame, model_name, model_version, run_id, created, model.levels)
    result.rows_total = len(rows)
    return rows, result


def run(
    settings: Settings,
    as_of=None,
    *,
    engine: Engine | None = None,
    fence: forecast_store.Lease | None = None,
) -> BatchResult:
    """The job: champion + stored bars of the universe -> forecast store, recorded in job_runs.

    With `fence` (the scheduler's lock lease) the rows commit only while the lease is held:
    a job that lost its lock raises `LockLostError` and writes nothing.
    """
    from forecaster import tracking

    compute = use_engine(settings)  # FORECASTER_ENGINE=ray: a cluster that cannot be reached fails now
    # The data folder holds the SQLite store and MLflow's local files: check it before loading.
    ensure_writable(settings.home)
    engine = engine or forecast_store.connect(settings.forecast_store_url)
    with forecast_store.record_run(
        engine,
        "batch_forecast",
        heartbeat_s=settings.job_heartbeat_s,
        stale_after_s=settings.job_stale_after_s,
    ) as record:
        champion = tracking.load_registered(settings)
        tickers = universe_tickers(settings)
        prices = PriceStore(settings.price_dir)
        bars, missing = read_universe(prices, tickers)
        model = champion.model
        context = serving.read_context(prices, model, tickers)
        fresh, result = fresh_bars(bars, as_of, model.config.window.window + 1)
        state, state_rows = learn_aci(engine, model, champion.name, fresh, result.as_of)
        rows, _ = forecast(
            model,
            fresh,
            result.as_of,
            model_name=champion.name,
            model_version=champion.version,
            run_id=champion.run_id,
            state=state,
            compute=compute,
            shard_size=settings.batch_shard_size,
            context=context,
        )
        result.rows_total = len(rows)
        result.skipped = missing | result.skipped
        names = {"model_name": champion.name, "model_version": champion.version}
        risk, ranks, left_out = joint_products(
            model, fresh, **names, created_at=forecast_store.utcnow(), context=context, state=state
        )
        for ticker, why in left_out.items():
            log.warning("%s: left out of risk and ranks (%s)", ticker, why)
        written = forecast_store.write_batch(
            engine, rows, fence=fence, aci_state=state_rows, risk=risk, ranks=ranks
        )
        result.rows_written = written.pop("forecasts")
        result.products_written = written
        record.counts = {
            "as_of": str(result.as_of),
            "model_version": champion.version,
            "universe": len(tickers),
            "forecast": len(result.forecast),
            "skipped": len(result.skipped),
            "rows_written": result.rows_written,
            "rows_existing": result.rows_total - result.rows_written,
            "aci_tickers_learnt": len({r["ticker"] for r in state_rows}),
            "risk_rows_written": written["risk"],
            "rank_rows_written": written["ranks"],
        }
        if result.skipped:
            record.status = "partial"
            record.error = "skipped " + "; ".join(f"{t}: {why}" for t, why in result.skipped.items())
    for ticker, why in result.skipped.items():
        log.warning("%s: skipped (%s)", ticker, why)
    log.info(
        "%s v%s as of %s: %d tickers forecast, %d skipped; %d new rows (%d already stored)",
        champion.name,
        champion.version,
        result.as_of,
        len(result.forecast),
        len(result.skipped),
        result.rows_written,
        result.rows_total - result.rows_written,
    )
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--as-of", help="forecast from the bars of this day (YYYY-MM-DD); default the latest")
    parser.add_argument(
        "--engine", choices=ENGINES, help="local or ray (default FORECASTER_ENGINE, else local)"
    )
    args = parser.parse_args(argv)
    exit_on_placeholders()  # a .env copied unchanged from .env.example
    setup_logging()  # forecaster.runtime.logs: plain lines, or JSON with FORECASTER_LOG_FORMAT=json
    try:
        run(Settings(**({"engine": args.engine} if args.engine else {})), args.as_of)
    # One line naming what is wrong, credentials masked (--verbose: the traceback too); exit code 1.
    except (forecast_store.SchemaVersionError, forecast_store.LockLostError) as exc:
        fail(exc, code=1)
    except Exception as exc:
        fail(describe_error(exc)[0], code=1)


if __name__ == "__main__":
    main()
