"""Compare competitors across backtest reports run on the same tickers and origins (the regimes goals).

    python benchmarks/compare_backtests.py base=bt/base ctx=bt/ctx_all \\
        --pairs ctx:fuzzy/ctx:single_lstm ctx:fuzzy/ctx:equal_weight ctx:fuzzy/base:gjr_garch+cqr

Each argument LABEL=DIR is a `forecaster backtest` output folder; its models are named
LABEL:model. The script joins every model's rows on (ticker, origin, horizon) and prints:
- mean pinball (x1e4) and 80/95% coverage of every model, on the rows every report shares;
- for each pair A/B: A's pinball improvement over B in %, and the two-sided stationary-bootstrap
  p-value (Politis-Romano, `forecaster.evaluation.comparison.bootstrap_pvalue`) of the per-origin
  mean loss differential (averaged over tickers and horizons, so cross-sectional dependence and
  persistent regimes are in the resampled blocks);
- the 80% and 95% coverage of chosen models per volatility tercile, regime and calendar year,
  and the worst year's distance from nominal;
- the "what the gate adds" figures of each report (its folds.csv), averaged over folds;
- `--adaptive LABEL` replays that report's fuzzy rows through ACI / DtACI (causally, as the
  backtest does), so their cost is measured on the very forecasts the static rows hold.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from forecaster.config import ForecasterConfig
from forecaster.evaluation.backtest import _aci_rows
from forecaster.evaluation.comparison import bootstrap_pvalue
from forecaster.evaluation.report import gate_table
from forecaster.evaluation.scoring import row_pinball, volatility_terciles

KEYS = ["ticker", "origin", "horizon"]


def load_runs(specs: list[str], adaptive: list[str] = ()) -> pd.DataFrame:
    """Every report's rows, models renamed LABEL:model, kept where every report has the key.

    For the labels in `adaptive`, the fuzzy rows are also replayed through DtACI (and ACI where
    the report has none), as `walk_forward` does for fuzzy_aci / fuzzy_dtaci.
    """
    frames = []
    for spec in specs:
        label, folder = spec.split("=", 1)
        f = pd.read_csv(Path(folder) / "forecasts.csv.gz", parse_dates=["origin", "target_date"])
        if label in adaptive:
            missing = [m for m in ("aci", "dtaci") if f"fuzzy_{m}" not in set(f["model"])]
            config = ForecasterConfig()  # the backtest's levels, horizon and coverage
            f = pd.concat([f, *(_aci_rows(f, config, f"fuzzy_{m}", m) for m in missing)], ignore_index=True)
        frames.append(f.assign(model=label + ":" + f["model"].astype(str)))
    rows = pd.concat(frames, ignore_index=True)
    per_model = rows.groupby("model")[KEYS].apply(lambda g: set(map(tuple, g.to_numpy())))
    common = set.intersection(*per_model.tolist())
    keep = pd.Series(list(map(tuple, rows[KEYS].to_numpy()))).isin(common).to_numpy()
    return rows[keep].assign(pinball=lambda f: row_pinball(f))


def covered(f: pd.DataFrame, level: int) -> pd.Series:
    return (f["actual"] >= f[f"lower_{level}"]) & (f["actual"] <= f[f"upper_{level}"])


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    out = rows.groupby("model").apply(
        lambda g: pd.Series({
            "pinball_x1e4": 1e4 * g["pinball"].mean(),
            "coverage_80": 100 * covered(g, 80).mean(),
            "coverage_95": 100 * covered(g, 95).mean(),
            "rows": len(g),
        })
    )  # fmt: skip
    return out.sort_values("pinball_x1e4")


def pair_test(rows: pd.DataFrame, a: str, b: str) -> dict:
    """A against B: pinball improvement in % and the bootstrap p of the per-origin differential."""
    per_origin = rows[rows["model"].isin([a, b])].pivot_table(
        index="origin", columns="model", values="pinball", aggfunc="mean"
    )
    d = (per_origin[a] - per_origin[b]).dropna().to_numpy()
    mean_b = rows.loc[rows["model"] == b, "pinball"].mean()
    mean_a = rows.loc[rows["model"] == a, "pinball"].mean()
    return {
        "a": a,
        "b": b,
        "improvement_pct": 100 * (mean_b - mean_a) / mean_b,
        "bootstrap_p": bootstrap_pvalue(d),
        "origins": len(d),
    }


def conditional(rows: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """80/95% coverage per volatility tercile, regime and year of the chosen models."""
    f = rows[rows["model"].isin(models)].copy()
    f["vol_tercile"] = volatility_terciles(f).astype(str)
    f["year"] = f["origin"].dt.year
    f["in80"], f["in95"] = covered(f, 80), covered(f, 95)
    parts = []
    for condition in ("vol_tercile", "regime", "year"):
        if condition not in f or f[condition].isna().all():
            continue
        g = f.groupby(["model", condition], observed=True)[["in80", "in95"]].mean().mul(100).round(1)
        parts.append(g.reset_index().rename(columns={condition: "group"}).assign(condition=condition))
    return pd.concat(parts, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", help="LABEL=DIR of a backtest report")
    parser.add_argument("--pairs", nargs="*", default=[], help="A/B pairs of LABEL:model")
    parser.add_argument("--conditional", nargs="*", default=[], help="LABEL:model to break coverage down for")
    parser.add_argument(
        "--adaptive", nargs="*", default=[], help="LABELs whose fuzzy rows to replay via DtACI"
    )
    args = parser.parse_args()
    rows = load_runs(args.runs, args.adaptive)
    pd.set_option("display.width", 160)
    print(
        f"{rows['ticker'].nunique()} tickers, {rows['origin'].nunique()} origins, rows shared by every model\n"
    )
    print(summary(rows).round(2).to_string(), "\n")
    if args.pairs:
        tests = pd.DataFrame([pair_test(rows, *p.split("/")) for p in args.pairs])
        print("A vs B: pinball improvement of A over B (%), stationary-bootstrap p (per-origin means)")
        print(tests.round(4).to_string(index=False), "\n")
    if args.conditional:
        table = conditional(rows, args.conditional)
        for condition, part in table.groupby("condition", sort=False):
            wide = part.pivot(index="group", columns="model", values=["in80", "in95"])
            print(f"coverage by {condition} (%)\n{wide.to_string()}\n")
    for spec in args.runs:
        label, folder = spec.split("=", 1)
        folds = pd.read_csv(Path(folder) / "folds.csv")
        gate = gate_table(folds)
        if len(gate):
            print(f"what the gate adds ({label}, mean over folds)\n{gate.round(3).to_string(index=False)}\n")


if __name__ == "__main__":
    main()
