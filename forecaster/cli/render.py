"""Tables and consoles for people: forecasts, accuracy, backtests, registry versions, job runs.

Every table fits the console's width: optional columns go first, then the remaining columns
are split over several tables that repeat the key columns (ticker, horizon, date; or the
model), so no key cell is ever cut to "…". The width is the terminal's; piped output (logs, CI,
`| less`) gets COLUMNS, else 80 (`console_width`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def console_width(stream=None) -> int:
    """Columns to print in: a terminal's own width, else COLUMNS, else 80.

    On a terminal its size wins over COLUMNS: GNU readline exports a COLUMNS (often a stale 80)
    into the environment of child processes. Piped, COLUMNS is the only word on the width.
    """
    stream = stream or sys.stdout
    try:
        if stream.isatty():
            return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        pass
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else 80


console = Console(width=console_width(sys.stdout))
err_console = Console(stderr=True, width=console_width(sys.stderr))


def say(message: str, **options) -> None:
    """A line for people, never re-wrapped: paths and URLs stay whole, for copying and grep."""
    console.print(message, soft_wrap=True, **options)


@dataclass
class Column:
    header: str
    cells: list[str]
    justify: str = "right"
    drop: int = 0  # 0: always shown; when too wide, the highest numbers are dropped first
    wrap: bool = False  # long free text (regimes, errors) may wrap; numbers and keys never do
    style: str | None = None

    @property
    def width(self) -> int:
        """Columns it needs: its longest cell, or for wrapping text its longest word."""
        texts = [*self.header.split("\n"), *self.cells]
        if self.wrap:
            return max(len(word) for text in texts for word in (text.split() or [""]))
        return max(len(text) for text in texts)


@dataclass
class Layout:
    title: str
    keys: list[Column]  # repeated in every part when the columns are split
    columns: list[Column]
    section_ends: set[int] = field(default_factory=set)  # rows after which a rule is drawn


def _table_width(columns: list[Column]) -> int:
    # Rich's default box: one space of padding on each side and one border per column, plus one.
    return sum(c.width for c in columns) + 3 * len(columns) + 1


def print_table(layout: Layout, out: Console | None = None, caption: str | None = None) -> None:
    """Print `layout` within the console's width (see the module docstring)."""
    out = out or console
    width = out.width
    columns = list(layout.columns)
    while _table_width(layout.keys + columns) > width and any(c.drop for c in columns):
        worst = max(c.drop for c in columns)
        columns = [c for c in columns if c.drop != worst]
    parts: list[list[Column]] = [[]]
    for column in columns:
        if parts[-1] and _table_width(layout.keys + parts[-1] + [column]) > width:
            parts.append([])
        parts[-1].append(column)
    for i, part in enumerate(parts):
        title = layout.title if i == 0 else "(continued)"
        out.print(_rich_table(title, layout.keys + part, layout.section_ends))
    if caption:
        out.print(f"[dim]{escape(caption)}[/]")


def _rich_table(title: str, columns: list[Column], section_ends: set[int]) -> Table:
    table = Table(title=title)
    for c in columns:
        table.add_column(
            c.header,
            justify=c.justify,
            no_wrap=not c.wrap,
            min_width=None if c.wrap else c.width,  # never squeezed into "…"
            overflow="fold",
            style=c.style,
        )
    n_rows = len(columns[0].cells) if columns else 0
    for r in range(n_rows):
        table.add_row(*(escape(c.cells[r]) for c in columns), end_section=r in section_ends)
    return table


def _price(value: float, band: bool = False) -> str:
    """Prices readable at a glance: 2,506.85; bands of large prices without decimals (2,442)."""
    if value != value:
        return "-"
    if band and abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.4g}"


def print_forecast(table, regime_labels: list[str] | None = None, out: Console | None = None) -> None:
    """The forecast table (model.predict), one block of rows per ticker, and its regime per ticker."""
    levels = sorted(int(c.split("_")[1]) for c in table.columns if c.startswith("lower_"))
    members = sorted(c for c in table.columns if c.startswith("u_"))
    rows = table.to_dict("records")  # grouped by ticker, horizons in order (as `predict` returns them)
    first = [i == 0 or rows[i - 1]["ticker"] != r["ticker"] for i, r in enumerate(rows)]
    ends = {i - 1 for i in range(1, len(rows)) if first[i]}
    as_of = ", ".join(sorted({str(d.date()) for d in table["as_of"]}))
    layout = Layout(
        f"Forecast of the adjusted close, as of {as_of}",
        keys=[
            Column("ticker", [r["ticker"] if f else "" for r, f in zip(rows, first, strict=True)], "left"),
            Column("h", [str(r["horizon"]) for r in rows]),
            Column("date", [str(r["target_date"].date()) for r in rows]),
        ],
        columns=[
            Column(
                "last",
                [_price(r["last_price"]) if f else "" for r, f in zip(rows, first, strict=True)],
                drop=2,
            ),
            Column("forecast", [_price(r["forecast"]) for r in rows], style="bold"),
            Column("change", [f"{r['forecast'] / r['last_price'] - 1:+.2%}" for r in rows], drop=1),
            *[
                Column(
                    f"{p}% interval",
                    [f"{_price(r[f'lower_{p}'], True)}–{_price(r[f'upper_{p}'], True)}" for r in rows],
                )
                for p in levels
            ],
        ],
        section_ends=ends,
    )
    notes = [_regime_note(r, members, regime_labels) for r, f in zip(rows, first, strict=True) if f]
    print_table(layout, out, caption="\n".join(notes) if members else None)


def _regime_note(row: dict, members: list[str], labels: list[str] | None) -> str:
    """`^GSPC: regime turbulent, falling (0.53; calm, rising 0.47)`, flagged when near uniform."""
    u = [float(row[m]) for m in members]
    names = labels if labels and len(labels) == len(u) else [f"cluster {k}" for k in range(len(u))]
    order = sorted(range(len(u)), key=lambda k: -u[k])
    others = "; ".join(f"{names[k]} {u[k]:.2f}" for k in order[1:])
    note = f"{row['ticker']}: regime {names[order[0]]} ({u[order[0]]:.2f}; {others})"
    # The same threshold idea as the clustering's warning: a lead this small says little.
    if u[order[0]] - 1 / len(u) < 0.1:
        note += ": memberships near uniform, the experts are weighted about equally"
    return note


def print_metrics(metrics: dict, out: Console | None = None) -> None:
    splits = [s for s in ("val", "test") if f"{s}_rmse" in metrics]
    by_split = [
        {k.removeprefix(f"{s}_"): v for k, v in metrics.items() if k.startswith(f"{s}_")} for s in splits
    ]
    spec = [  # header, metric key, format; the distribution first: it is what the model forecasts
        ("pinball x1e4", "pinball", "{:.2f}", 1e4),
        ("Winkler 80 x1e4", "winkler_80", "{:.1f}", 1e4),
        ("80% cover", "coverage_80", "{:.1%}", 1),
        ("95% cover", "coverage_95", "{:.1%}", 1),
        ("RMSE", "rmse", "{:.2f}", 1),
        ("naive RMSE", "naive_rmse", "{:.2f}", 1),
        ("Theil U", "theil_u", "{:.3f}", 1),
        ("direction", "directional_accuracy", "{:.1%}", 1),
    ]
    layout = Layout(
        "Accuracy over all horizons: the distribution (pinball, Winkler, coverage) and the median",
        keys=[Column("split", splits, "left")],
        columns=[
            Column("windows", [str(metrics[f"n_windows_{s}"]) for s in splits]),
            *[
                Column(header, [fmt.format(scale * m.get(key, float("nan"))) for m in by_split])
                for header, key, fmt, scale in spec
            ],
        ],
    )
    print_table(
        layout,
        out,
        caption=f"{metrics['n_clusters']} clusters; FPC {metrics['cluster_fpc']:.2f} (uniform would be "
        f"{metrics['cluster_uniform_fpc']:.2f}), mean largest membership "
        f"{metrics['cluster_mean_max_membership']:.2f}. Pinball and Winkler on cumulative log returns, lower "
        "is better; 80%/95% cover: measured coverage of the calibrated intervals; Theil U = RMSE / naive "
        "RMSE of the median: below 1 beats the naive forecast.",
    )


def print_backtest(summary, out: Console | None = None) -> None:
    n = int(summary["n"].iloc[0]) if len(summary) else 0
    spec = {  # summary column: (header, format)
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
    records = summary.to_dict("records")
    layout = Layout(
        f"Walk-forward backtest: {n:,} forecasts per model (tickers x origins x horizons)",
        keys=[Column("model", [str(r["model"]) for r in records], "left")],
        columns=[
            Column(header, ["-" if r[k] != r[k] else fmt.format(r[k]) for r in records])
            for k, (header, fmt) in spec.items()
            if k in summary
        ],
    )
    print_table(
        layout,
        out,
        caption="Theil U = RMSE / naive RMSE (price; return: on cumulative log returns); below 1 beats "
        "the naive last-price forecast. p: Diebold-Mariano p-value (HLN-corrected) of the squared "
        "log-return errors against that reference; pinball: mean pinball loss over the quantile "
        "levels (cumulative log return) x1e4, and its DM p-values.",
    )


def print_versions(rows: list[dict], title: str, out: Console | None = None) -> None:
    """The registry's versions (`tracking.list_versions`): one compact table, then a note per version.

    Scores in the units of every other table (pinball x1e4); the run id and the free text
    (regimes, the promotion decision) go to the notes, whole, where they can be copied.
    """
    layout = Layout(
        title,
        keys=[Column("version", [f"v{r['version']}" for r in rows], "left")],
        columns=[
            Column("aliases", [r["aliases"].replace(",", ", ") or "-" for r in rows], "left", wrap=True),
            Column("created (UTC)", [r["created"] for r in rows], "left", wrap=True),
            Column("pinball\nx1e4", [_number(r.get("test_pinball"), "{:.2f}", 1e4) for r in rows]),
            Column("80%\ncover", [_number(r.get("test_coverage_80"), "{:.1%}") for r in rows]),
            Column("RMSE", [_number(r.get("test_rmse"), "{:,.2f}") for r in rows], drop=1),
        ],
    )
    notes = [
        f"v{r['version']}: run {r['run_id']}"
        + "".join(f"; {name} {r[key]}" for key, name in _VERSION_NOTES.items() if r.get(key))
        for r in rows
    ]
    print_table(
        layout,
        out,
        caption="Scores on the held-out test block (pinball x1e4: lower is better).\n" + "\n".join(notes),
    )


_VERSION_NOTES = {"regimes": "regimes", "promotion.decision": "promotion:"}


def _number(value, fmt: str, scale: float = 1.0) -> str:
    """A registry tag (a string) in a table's format; "-" when missing or not a number."""
    try:
        return fmt.format(float(value) * scale)
    except (TypeError, ValueError):
        return "-"


def print_runs(rows: list[dict], out: Console | None = None) -> None:
    """One table row per run, then each run's counts and error below it: at 80 columns a counts
    column beside the others would be cut to a few letters."""
    out = out or console
    table = Table(title="Recent job runs (times UTC)")
    for name in ("id", "job", "started", "took", "status"):
        table.add_column(name, no_wrap=True)
    colours = {"ok": "green", "partial": "yellow", "failed": "red", "running": "cyan"}
    details = []
    for r in rows:
        took = f"{(r['finished_at'] - r['started_at']).total_seconds():.1f} s" if r["finished_at"] else "-"
        status = r["status"]
        table.add_row(
            str(r["id"]),
            r["job"],
            r["started_at"].strftime("%Y-%m-%d %H:%M:%S"),
            took,
            f"[{colours.get(status, 'white')}]{status}[/]",
        )
        counts = ", ".join(f"{k}={v}" for k, v in (r["counts"] or {}).items())
        error = (r["error"] or "")[:300]
        if counts or error:
            details.append(
                f"#{r['id']} " + "; ".join(x for x in (counts, f"error: {error}" if error else "") if x)
            )
    out.print(table)
    for line in details:
        out.print(escape(line), highlight=False)


def promotion_line(model_name: str, decision) -> str:
    """What a promotion did, in words: `fcm-lstm v1 is champion (first model)`."""
    new = f"{model_name} v{decision.challenger_version}"
    if decision.promoted and decision.champion_version is None:
        return f"{new} is champion (first model)"
    if decision.promoted:
        return f"{new} is champion, replacing v{decision.champion_version} ({decision.reason})"
    if decision.champion_version == decision.challenger_version:
        return f"{new} is already champion"
    return f"{new} is challenger; v{decision.champion_version} stays champion ({decision.reason})"
