"""Tables and consoles for people: forecasts, accuracy, backtests, registry versions, job runs."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

# Piped output (logs, CI) would otherwise be cut to 80 columns and truncate the tables.
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)


def print_backtest(summary) -> None:
    n = int(summary["n"].iloc[0]) if len(summary) else 0
    out = Table(title=f"Walk-forward backtest: {n:,} forecasts per model (tickers x origins x horizons)")
    columns = {  # summary column: (header, format)
        "model": ("model", "{}"),
        "rmse": ("RMSE", "{:,.2f}"),
        "mase": ("MASE", "{:.3f}"),
        "theil_u": ("Theil U", "{:.4f}"),
        "return_theil_u": ("U (return)", "{:.4f}"),
        "direction": ("direction", "{:.1%}"),
        "coverage_80": ("80%", "{:.1%}"),
        "coverage_95": ("95%", "{:.1%}"),
        "dm_p_vs_naive": ("p vs naive", "{:.3f}"),
        "dm_p_vs_single_lstm": ("p vs single", "{:.3f}"),
        "pinball_x1e4": ("pinball x1e4", "{:.2f}"),
        "dm_p_pinball_vs_garch": ("pinball p vs garch", "{:.3f}"),
        "dm_p_pinball_vs_equal_weight": ("pinball p vs equal", "{:.3f}"),
    }
    columns = {k: v for k, v in columns.items() if k in summary}
    for header, _ in columns.values():
        out.add_column(header, justify="right", no_wrap=True)
    for r in summary.to_dict("records"):
        out.add_row(*("-" if r[k] != r[k] else fmt.format(r[k]) for k, (_, fmt) in columns.items()))
    console.print(out)
    console.print(
        "[dim]Theil U = RMSE / naive RMSE (price; return: on cumulative log returns); below 1 beats "
        "the naive last-price forecast. dm p: Diebold-Mariano p-value (HLN-corrected) of the "
        "squared log-return errors against that reference; pinball: mean pinball loss over the "
        "quantile levels (cumulative log return) x1e4, and its DM p-values.[/]"
    )


def print_forecast(table) -> None:
    levels = sorted(int(c.split("_")[1]) for c in table.columns if c.startswith("lower_"))
    members = [c for c in table.columns if c.startswith("u_")]
    as_of = ", ".join(sorted({str(d.date()) for d in table["as_of"]}))
    out = Table(title=f"Forecast of the adjusted close, as of {as_of}")
    for name in [
        "ticker",
        "h",
        "date",
        "last",
        "forecast",
        *[f"{p}% interval" for p in levels],
        "memberships",
    ]:
        out.add_column(name, justify="right", no_wrap=True)
    for r in table.to_dict("records"):
        out.add_row(
            r["ticker"],
            str(r["horizon"]),
            str(r["target_date"].date()),
            f"{r['last_price']:,.2f}",
            f"{r['forecast']:,.2f}",
            *[f"{r[f'lower_{p}']:,.0f}-{r[f'upper_{p}']:,.0f}" for p in levels],
            " ".join(f"{r[m]:.2f}" for m in members),
        )
    console.print(out)


def print_metrics(metrics: dict) -> None:
    out = Table(title="Accuracy over all horizons, against the naive last-price forecast")
    for name in [
        "split",
        "windows",
        "RMSE",
        "naive",
        "Theil U",
        "MAPE %",
        "naive",
        "direction",
        "80%",
        "95%",
    ]:
        out.add_column(name, justify="right", no_wrap=True)
    for split in ("val", "test"):
        if f"{split}_rmse" not in metrics:
            continue
        m = {k.removeprefix(f"{split}_"): v for k, v in metrics.items() if k.startswith(f"{split}_")}
        out.add_row(
            split,
            str(metrics[f"n_windows_{split}"]),
            f"{m['rmse']:.2f}",
            f"{m['naive_rmse']:.2f}",
            f"{m['theil_u']:.3f}",
            f"{m['mape']:.3f}",
            f"{m['naive_mape']:.3f}",
            f"{m['directional_accuracy']:.1%}",
            f"{m.get('coverage_80', float('nan')):.1%}",
            f"{m.get('coverage_95', float('nan')):.1%}",
        )
    console.print(out)
    console.print(
        f"[dim]{metrics['n_clusters']} clusters; FPC {metrics['cluster_fpc']:.2f} (uniform would be "
        f"{metrics['cluster_uniform_fpc']:.2f}), mean largest membership {metrics['cluster_mean_max_membership']:.2f}. "
        "Theil U = RMSE / naive RMSE: below 1 beats the naive forecast. 80%/95%: measured "
        "coverage of the conformal intervals.[/]"
    )


def print_versions(rows: list[dict], title: str) -> None:
    out = Table(title=title)
    for name in rows[0]:
        out.add_column(name, no_wrap=True)
    for row in rows:
        out.add_row(*(str(v) for v in row.values()))
    console.print(out)


def print_runs(rows: list[dict]) -> None:
    out = Table(title="Recent job runs (times UTC)")
    for name in ("id", "job", "started", "took", "status", "counts", "error"):
        out.add_column(name, no_wrap=name not in ("counts", "error"))
    colours = {"ok": "green", "partial": "yellow", "failed": "red", "running": "cyan"}
    for r in rows:
        took = f"{(r['finished_at'] - r['started_at']).total_seconds():.1f} s" if r["finished_at"] else "-"
        status = r["status"]
        out.add_row(
            str(r["id"]),
            r["job"],
            r["started_at"].strftime("%Y-%m-%d %H:%M:%S"),
            took,
            f"[{colours.get(status, 'white')}]{status}[/]",
            ", ".join(f"{k}={v}" for k, v in (r["counts"] or {}).items()),
            (r["error"] or "")[:300],
        )
    console.print(out)
