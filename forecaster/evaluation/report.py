"""The backtest report: tables (CSV, Markdown) and plots (PNG) of a `BacktestResult`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from forecaster.evaluation import plots
from forecaster.evaluation.evidence import evidence_tables, traffic_light_shares
from forecaster.evaluation.scoring import conditional_coverage, dm_tests, reliability, score


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table; floats to 4 significant digits (1 decimal from 100 on)."""

    def cell(v) -> str:
        if isinstance(v, float | np.floating):
            if np.isnan(v):
                return "-"
            return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.4g}"
        if isinstance(v, pd.Timestamp):
            return str(v.date())
        return str(v)

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" if frame[c].dtype == object else "---:" for c in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


REPORT_COLUMNS = [
    "mae", "rmse", "mape", "mase", "theil_u", "return_rmse", "return_theil_u", "direction",
    "coverage_80", "width_80", "coverage_95", "width_95", "pinball_x1e4", "crps", "wis", "winkler_80_x1e4",
    "winkler_95_x1e4",
]  # fmt: skip
# Diebold-Mariano references: squared error against the point baselines, pinball loss against the
# distributional bar (GARCH) and the fuzzy model's own equal-weight twin.
POINT_REFERENCES = ("naive", "single_lstm")
PINBALL_REFERENCES = ("garch", "equal_weight")


def summary_table(result) -> pd.DataFrame:
    """The aggregated table: one row per model, with the DM p-values against the references.

    pinball_x1e4: mean pinball loss over the quantile levels (cumulative log return) times 1e4;
    winkler_XX_x1e4: interval score of the XX% interval (log-return units) times 1e4, the unit of
    the quickstart and the README; dm_p_vs_<ref>: squared error; dm_p_pinball_vs_<ref>: pinball
    loss (all horizons).
    """
    table = in_x1e4(score(result.forecasts))
    for loss, refs, prefix in (
        ("squared", POINT_REFERENCES, "dm_p_vs_"),
        ("pinball", PINBALL_REFERENCES, "dm_p_pinball_vs_"),
    ):
        tests = dm_tests(result.forecasts, refs, loss=loss)
        for ref in tests["reference"].unique() if len(tests) else []:
            p = tests[(tests["reference"] == ref) & (tests["horizon"] == "all")].set_index("model")["p_value"]
            table[f"{prefix}{ref}"] = table["model"].astype(str).map(p)
    keep = ["model", "n", *[c for c in REPORT_COLUMNS if c in table]]
    return table[keep + [c for c in table if c.startswith("dm_p_")]]


def in_x1e4(table: pd.DataFrame) -> pd.DataFrame:
    """Pinball and Winkler scores in units of 1e-4 log return, as everything the user reads shows them."""
    scaled = {f"{c}_x1e4": 1e4 * table[c] for c in ("pinball", "winkler_80", "winkler_95") if c in table}
    return table.assign(**scaled)


def coverage_pivot(conditional: pd.DataFrame, column: str = "coverage_80") -> pd.DataFrame:
    """One row per (condition, group), one column per model: a conditional-coverage table to read."""
    if conditional.empty or column not in conditional:
        return pd.DataFrame({"condition": []})
    keys = ["condition", "group"]
    order = pd.MultiIndex.from_frame(conditional[keys].drop_duplicates())  # low, mid, high; years in order
    frame = conditional.assign(model=conditional["model"].astype(str))
    wide = frame.set_index([*keys, "model"])[column].unstack("model").reindex(order)
    models = [str(m) for m in pd.unique(conditional["model"])]
    return wide[models].reset_index().rename_axis(columns=None)


def write_report(result, output: str | Path, *, horizon_to_plot: int = 1) -> dict[str, Path]:
    """Write the backtest's tables (CSV, Markdown) and plots (PNG) into `output`; return the paths."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    tables = report_tables(result)
    paths: dict[str, Path] = {}
    for name, table in tables.items():
        paths[name] = output / f"{name}.csv"
        table.to_csv(paths[name], index=False)
    paths["forecasts"] = output / "forecasts.csv.gz"
    result.forecasts.to_csv(paths["forecasts"], index=False)
    paths |= _write_plots(result, tables, output, horizon_to_plot)
    paths["report"] = output / "report.md"
    paths["report"].write_text("\n\n".join(_markdown_sections(result, tables)) + "\n")
    return paths


def report_tables(result) -> dict[str, pd.DataFrame]:
    """Every table of the report, by the name of its CSV file."""
    f = result.forecasts
    return {
        "summary": summary_table(result),
        "by_horizon": in_x1e4(score(f, ("model", "horizon"))),
        "by_fold": score(f, ("model", "fold")),
        "by_ticker": score(f, ("model", "ticker")),
        "dm_tests": dm_tests(f, POINT_REFERENCES),
        "dm_tests_pinball": dm_tests(f, PINBALL_REFERENCES, loss="pinball"),
        "conditional_coverage": conditional_coverage(f),
        "reliability": reliability(f),
        "folds": result.folds,
        "gate": gate_table(result.folds),
        **evidence_tables(f),
    }


def gate_table(folds: pd.DataFrame) -> pd.DataFrame:
    """Per fuzzy-gated model, its gate's figures (`forecaster.evaluation.gate`) averaged over folds."""
    rows = []
    for column in [c for c in folds.columns if "_gate_" in c]:
        model, figure = column.split("_gate_")
        rows.append({"model": model, "figure": figure, "value": folds[column].mean()})
    if not rows:
        return pd.DataFrame(columns=["model"])
    return pd.DataFrame(rows).pivot(index="model", columns="figure", values="value").reset_index()


def _write_plots(result, tables, output: Path, horizon_to_plot: int) -> dict[str, Path]:
    """Forecasts and memberships per ticker, error by horizon, reliability, conditional coverage."""
    f, paths = result.forecasts, {}
    shown = "fuzzy" if "fuzzy" in set(f["model"]) else str(f["model"].cat.categories[-1])
    for ticker in sorted(f["ticker"].unique()):
        safe = ticker.replace("^", "")
        paths[f"forecast_{ticker}"] = plots.plot_backtest_forecast(
            f, shown, ticker, horizon_to_plot, output / f"forecast_vs_actual_{safe}.png"
        )
        if len(result.memberships):
            paths[f"memberships_{ticker}"] = plots.plot_backtest_memberships(
                f, result.memberships, ticker, output / f"memberships_{safe}.png"
            )
    paths["error_by_horizon"] = plots.plot_error_by_horizon(
        tables["by_horizon"], output / "error_by_horizon.png"
    )
    if len(tables["reliability"]):
        paths["reliability_plot"] = plots.plot_reliability(tables["reliability"], output / "reliability.png")
    if len(tables["conditional_coverage"]):
        paths["coverage_plot"] = plots.plot_conditional_coverage(
            tables["conditional_coverage"], output / "coverage_by_condition.png"
        )
    if len(tables["traffic_light"]):
        paths["traffic_light_plot"] = plots.plot_traffic_light(
            traffic_light_shares(tables["traffic_light"]), output / "traffic_light.png"
        )
    return paths


def _markdown_sections(result, tables) -> list[str]:
    """The report.md text, one section per item."""
    f, by_horizon = result.forecasts, tables["by_horizon"]
    span = f"{f['origin'].min().date()} to {f['origin'].max().date()}"
    return [
        "# Walk-forward backtest",
        f"Origins {span}, tickers {', '.join(sorted(f['ticker'].unique()))}, {len(result.folds)} folds. "
        "Theil U and return_theil_u below 1 beat the naive last-price forecast; dm_p_vs_*: "
        "Diebold-Mariano p-value (HLN-corrected, squared log-return error, all horizons); "
        "dm_p_pinball_vs_*: the same on the pinball loss. pinball_x1e4: mean pinball loss over the "
        "quantile levels of the cumulative log return, x1e4; winkler_XX_x1e4: interval score of the "
        "XX% interval, log-return units x1e4 (lower is better for both).",
        "## Aggregated",
        markdown_table(tables["summary"]),
        "## Conditional coverage (80% interval)",
        "Volatility terciles are cut per ticker over the backtest origins by the trailing realized "
        "volatility of the window; regime is the fuzzy model's dominant cluster (0 = calmest).",
        markdown_table(coverage_pivot(tables["conditional_coverage"], "coverage_80")),
        "## Conditional coverage (95% interval)",
        markdown_table(coverage_pivot(tables["conditional_coverage"], "coverage_95")),
        "## By horizon",
        markdown_table(
            by_horizon[["model", "horizon", "n", *[c for c in REPORT_COLUMNS if c in by_horizon]]]
        ),
        "## By fold",
        markdown_table(
            tables["by_fold"][["model", "fold", "n", "rmse", "mase", "return_theil_u", "direction"]]
        ),
        "## Diebold-Mariano tests",
        markdown_table(tables["dm_tests"]),
        "## Diebold-Mariano tests on the pinball loss",
        markdown_table(tables["dm_tests_pinball"]),
        "## What the gate adds",
        "In sigma units before calibration, on each fold's origins, averaged over folds: shift_q05 / "
        "shift_q95, mean |fused - equal-weight| quantile; oracle_gap_pct, how much lower the pinball "
        "would be with the best expert per window in hindsight than with equal weights; "
        "captured_pct, the share of that gap the gate captures (0: decorative); expert_spread, mean "
        "|expert median - equal-weight median|.",
        markdown_table(tables["gate"]),
        *_evidence_sections(tables),
        "## Folds",
        markdown_table(tables["folds"]),
    ]


def _evidence_sections(tables) -> list[str]:
    """The Model Confidence Set, per-ticker wins and the risk backtests."""
    lights = traffic_light_shares(tables["traffic_light"])
    return [
        "## Model Confidence Set (90%, pinball loss)",
        "Hansen-Lunde-Nason MCS on the pinball loss averaged per origin (stationary bootstrap): "
        "`included` models cannot be told apart from the best at 10%.",
        markdown_table(tables["mcs"]),
        "## Wins per ticker (pinball loss)",
        markdown_table(tables["wins"]),
        "## VaR backtests (1-day quantiles)",
        "Per model, tail and alpha over tickers: pooled violation rate with its Kupiec p-value (every "
        "ticker-day one trial; exceptions cluster on market days, so it over-rejects a little) and "
        "the share of tickers where "
        "Kupiec (POF), Christoffersen conditional coverage and the dynamic quantile test do not reject "
        "at 5% (`var_tests.csv` has every ticker's statistics).",
        markdown_table(tables["var_summary"]),
        "## ES backtest (Acerbi-Szekely Z2, 1-day 2.5% ES)",
        "Per model over tickers: the share where Z2 does not reject at 5%, the mean Z2 (0 under the "
        "null, negative when the realized tail is heavier than forecast) and the pooled Z2 of all "
        "rows with its simulated p-value (`es_tests.csv` has every ticker's).",
        markdown_table(tables["es_summary"]),
        "## Basel traffic light (99% 1-day VaR, rolling 250 days)",
        markdown_table(lights) if len(lights) else "No model forecasts the 1% quantile.",
    ]
