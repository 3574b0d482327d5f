"""The backtest report: tables (CSV, Markdown) and plots (PNG) of a `BacktestResult`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from forecaster import plots
from forecaster.evaluation.scoring import dm_tests, score


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
    "coverage_80", "width_80", "coverage_95", "width_95",
]  # fmt: skip


def summary_table(result) -> pd.DataFrame:
    """The aggregated table: one row per model, with the DM p-values against the references."""
    table = score(result.forecasts)
    tests = dm_tests(result.forecasts)
    for ref in tests["reference"].unique() if len(tests) else []:
        p = tests[(tests["reference"] == ref) & (tests["horizon"] == "all")].set_index("model")["p_value"]
        table[f"dm_p_vs_{ref}"] = table["model"].astype(str).map(p)
    keep = ["model", "n", *[c for c in REPORT_COLUMNS if c in table]]
    return table[keep + [c for c in table if c.startswith("dm_p_")]]


def write_report(result, output: str | Path, *, horizon_to_plot: int = 1) -> dict[str, Path]:
    """Write the backtest's tables (CSV, Markdown) and plots (PNG) into `output`; return the paths."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    f = result.forecasts
    tables = {
        "summary": summary_table(result),
        "by_horizon": score(f, ("model", "horizon")),
        "by_fold": score(f, ("model", "fold")),
        "by_ticker": score(f, ("model", "ticker")),
        "dm_tests": dm_tests(f),
        "folds": result.folds,
    }
    paths: dict[str, Path] = {}
    for name, table in tables.items():
        paths[name] = output / f"{name}.csv"
        table.to_csv(paths[name], index=False)
    paths["forecasts"] = output / "forecasts.csv.gz"
    f.to_csv(paths["forecasts"], index=False)

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

    span = f"{f['origin'].min().date()} to {f['origin'].max().date()}"
    sections = [
        "# Walk-forward backtest",
        f"Origins {span}, tickers {', '.join(sorted(f['ticker'].unique()))}, {len(result.folds)} folds. "
        "Theil U and return_theil_u below 1 beat the naive last-price forecast; dm_p_vs_*: "
        "Diebold-Mariano p-value (HLN-corrected, squared log-return error, all horizons).",
        "## Aggregated",
        markdown_table(tables["summary"]),
        "## By horizon",
        markdown_table(tables["by_horizon"][["model", "horizon", "n", *REPORT_COLUMNS]]),
        "## By fold",
        markdown_table(
            tables["by_fold"][["model", "fold", "n", "rmse", "mase", "return_theil_u", "direction"]]
        ),
        "## Diebold-Mariano tests",
        markdown_table(tables["dm_tests"]),
        "## Folds",
        markdown_table(tables["folds"]),
    ]
    paths["report"] = output / "report.md"
    paths["report"].write_text("\n\n".join(sections) + "\n")
    return paths
