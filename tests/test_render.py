"""Tables fit the terminal: at 80 columns nothing a reader needs is cut to "…"."""

import io

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from forecaster.cli.render import print_backtest, print_forecast, print_metrics, print_versions


def console(width: int) -> Console:
    return Console(file=io.StringIO(), width=width, color_system=None)


def forecast_table(tickers=("^GSPC", "BRK-B", "VERYLONGTICKER"), horizon=5, clusters=3) -> pd.DataFrame:
    rows = []
    for t, ticker in enumerate(tickers):
        last = 2506.85 * (t + 1)
        u = np.array([0.34, 0.33, 0.33] if t == 0 else [0.7, 0.2, 0.1])[:clusters]
        for h in range(1, horizon + 1):
            row = {
                "ticker": ticker,
                "as_of": pd.Timestamp("2018-12-31"),
                "horizon": h,
                "target_date": pd.Timestamp("2019-01-01") + pd.offsets.BDay(h),
                "last_price": last,
                "forecast": last * 1.001,
                **{f"quantile_{q:g}": last * (1 + (q - 0.5) / 10) for q in (0.025, 0.1, 0.5, 0.9, 0.975)},
                "lower_80": last * 0.96, "upper_80": last * 1.04,
                "lower_95": last * 0.95, "upper_95": last * 1.05,
                **{f"u_{k}": u[k] for k in range(clusters)},
                **{f"expert_{k}": last for k in range(clusters)},
            }  # fmt: skip
            rows.append(row)
    return pd.DataFrame(rows)


def key_cells(text: str) -> list[list[str]]:
    """The ticker, horizon and date cells of every body row of a rendered table."""
    rows = [line for line in text.splitlines() if line.startswith("│")]
    return [[c.strip() for c in line.strip("│").split("│")[:3]] for line in rows]


@pytest.mark.parametrize("width", [80, 100, 200])
def test_forecast_table_fits_the_width_and_never_cuts_ticker_horizon_or_date(width):
    out = console(width)
    table = forecast_table()
    print_forecast(table, ["calm, rising", "normal, falling", "turbulent, falling"], out=out)
    text = out.file.getvalue()
    assert max(len(line) for line in text.splitlines()) <= width
    cells = key_cells(text)
    assert len(cells) == len(table)
    for ticker, h, date in cells:
        assert "…" not in ticker + h + date
    assert [c[1] for c in cells] == [str(h) for h in table["horizon"]]
    assert {c[0] for c in cells} - {""} == {"^GSPC", "BRK-B", "VERYLONGTICKER"}
    assert all(len(c[2]) == 10 for c in cells)  # whole dates
    assert "80% interval" in text and "95% interval" in text
    words = " ".join(text.split())  # the notes below the table wrap at the width
    assert "^GSPC: regime calm, rising (0.34" in words and "memberships near uniform" in words


def test_metrics_and_backtest_tables_split_instead_of_truncating_at_80_columns():
    out = console(80)
    metrics = {
        "n_clusters": 3, "cluster_fpc": 0.44, "cluster_uniform_fpc": 0.33, "cluster_mean_max_membership": 0.6,
        **{f"n_windows_{s}": 1482 for s in ("val", "test")},
        **{f"{s}_{k}": 0.5 for s in ("val", "test") for k in (
            "rmse", "naive_rmse", "theil_u", "mape", "naive_mape", "directional_accuracy", "coverage_80", "coverage_95"
        )},
    }  # fmt: skip
    print_metrics(metrics, out=out)
    summary = pd.DataFrame(
        {"model": ["naive", "equal_weight", "fuzzy"], "n": 22590, "rmse": 61.03, "mase": 1.1, "theil_u": 1.0,
         "return_theil_u": 0.99, "direction": 0.5, "coverage_80": 0.8, "coverage_95": 0.95,
         "dm_p_vs_naive": 0.5, "dm_p_vs_single_lstm": 0.1, "pinball_x1e4": 28.0}
    )  # fmt: skip
    print_backtest(summary, out=out)
    print_versions(
        [{"version": "1", "aliases": "challenger,champion", "created": "2026-01-01 10:00", "run_id": "a" * 32,
          "regimes": "calm, rising 37% | turbulent, falling 26%"}],
        "fcm-lstm in sqlite:////very/long/path/mlflow.db", out=out,
    )  # fmt: skip
    text = out.file.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    for header in ("naive RMSE", "Winkler 80 x1e4", "95% cover", "pinball x1e4", "equal_weight", "a" * 32):
        assert header in text


def test_registry_versions_are_one_table_at_80_columns_with_pinball_in_x1e4():
    out = console(80)
    rows = [
        {
            "version": str(v), "aliases": aliases, "created": f"2026-01-0{v} 10:00", "run_id": f"{v}" * 32,
            "test_pinball": "0.00255", "test_coverage_80": "0.8123", "test_rmse": "61.03",
            "regimes": "calm, rising 37% | normal, falling 37% | turbulent, falling 26%",
            "promotion.decision": "promoted" if aliases else "",
        }
        for v, aliases in ((3, "challenger,champion"), (2, ""), (1, ""))
    ]  # fmt: skip
    print_versions(rows, "fcm-lstm in sqlite:////home/me/.forecaster/mlflow.db", out=out)
    text = out.file.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert text.count("┏") == 1 and "(continued)" not in text  # one table, not five stacked
    assert "x1e4" in text and "25.50" in text and "0.00255" not in text
    assert "81.2%" in text and "61.03" in text and "…" not in text
    assert "v3: run " + "3" * 32 in text  # the whole run id, for copying
    assert "promotion: promoted" in " ".join(text.split())
