"""Results a researcher keeps: results.json, a Markdown report and a forest plot PNG.

The forest plot shows each term's estimate and 95% interval: the federated fit, and beside
it whatever comparisons exist (the pooled fit where rows can be pooled, as in the local
demo; each node alone where policy allows; the generator's true values when known).
Files are written whole or not at all (temporary file, then rename).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from workloads.analysis.glm import FitResult
from workloads.contracts.errors import UserError


@dataclass(frozen=True)
class Estimates:
    """One series of the forest plot: per term, an estimate and its 95% interval."""

    label: str
    values: Mapping[str, tuple[float, float, float]]  # term -> (estimate, low, high)

    @staticmethod
    def of(label: str, result: FitResult) -> Estimates:
        return Estimates(label, {t.name: (t.estimate, t.ci_low, t.ci_high) for t in result.terms})


def _atomic_write(path: Path, data: bytes) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise UserError(
            f"cannot write {path}: {exc.strerror}; fix: choose a writable path"
        ) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(result: FitResult, path: Path, extra: Mapping[str, object] | None = None) -> None:
    payload = {**result.to_dict(), **(extra or {})}
    _atomic_write(path, (json.dumps(payload, indent=2, allow_nan=True) + "\n").encode())


def forest_plot(
    series: Sequence[Estimates],
    path: Path,
    *,
    truth: Mapping[str, float] | None = None,
    title: str = "",
    skip: Sequence[str] = ("intercept",),
) -> None:
    """Terms down the side, one marker and interval line per series, true values as x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    terms = [t for t in series[0].values if t not in skip]
    height = max(2.5, 0.55 * len(terms) * max(1, len(series)) ** 0.5 + 1.2)
    fig, ax = plt.subplots(figsize=(7.5, height))
    band = 0.7 / max(1, len(series))
    markers = "os^Dvp<>"
    for s_index, estimates in enumerate(series):
        offset = ((len(series) - 1) / 2 - s_index) * band  # first series on top
        ys, xs, lows, highs = [], [], [], []
        for t_index, term in enumerate(terms):
            if term not in estimates.values:
                continue
            estimate, low, high = estimates.values[term]
            if not all(math.isfinite(v) for v in (estimate, low, high)):
                continue
            ys.append(len(terms) - 1 - t_index + offset)
            xs.append(estimate)
            lows.append(estimate - low)
            highs.append(high - estimate)
        ax.errorbar(xs, ys, xerr=[lows, highs], fmt=markers[s_index % len(markers)],
                    capsize=3, label=estimates.label)
    if truth:
        ys_true = [len(terms) - 1 - i for i, t in enumerate(terms) if t in truth]
        ax.scatter([truth[t] for t in terms if t in truth], ys_true, marker="x", color="black",
                   s=60, zorder=5, label="true value")
    ax.axvline(0.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_yticks(range(len(terms)))
    ax.set_yticklabels(list(reversed(terms)))
    ax.set_xlabel("coefficient (per unit of the column; 0 = no effect) with 95% interval")
    if title:
        ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    except OSError as exc:
        plt.close(fig)
        raise UserError(
            f"cannot write {path}: {exc.strerror}; fix: choose a writable path"
        ) from None
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}f}"


def _p(value: float) -> str:
    return "<1e-16" if value < 1e-16 else (f"{value:.2e}" if value < 1e-3 else f"{value:.4f}")


def markdown(
    result: FitResult,
    *,
    plot: str | None = None,
    comparisons: Sequence[Estimates] = (),
    notes: Sequence[str] = (),
) -> str:
    spec = result.spec
    ratio = {"logistic": "odds ratio", "poisson": "rate ratio"}.get(result.family)
    lines = [
        f"# {result.family.capitalize()} model of `{spec.outcome}` on `{spec.table}`",
        "",
        f"- covariates: {', '.join(spec.covariates) or 'none'}; categorical: "
        + (", ".join(f"{c} (reference {r if r is not None else 'first level'})"
                     for c, r in spec.categorical) or "none"),
        f"- cohort: `{spec.cohort}`" if spec.cohort else "- cohort: every row",
        f"- rows used: {result.n:,} ("
        + ", ".join(f"{node} {rows:,}" for node, rows in result.rows_per_node.items()) + ")",
        "- rows of the cohort left out (missing or undeclared values): "
        + ", ".join(f"{node} {rows:,}" for node, rows in result.excluded_per_node.items()),
        f"- converged: {'yes' if result.converged else 'no'} after {result.iterations} rounds; "
        f"deviance {result.deviance:.6g}"
        + (f"; residual variance {result.dispersion:.6g}" if result.family == "linear" else ""),
        "",
    ]
    header = "| term | estimate | std. error | 95% interval | p |"
    rule = "|---|---|---|---|---|"
    if ratio:
        header += f" {ratio} (95% interval) |"
        rule += "---|"
    lines += [header, rule]
    for t in result.terms:
        row = (f"| {t.name} | {_fmt(t.estimate)} | {_fmt(t.std_error)} | "
               f"{_fmt(t.ci_low)} to {_fmt(t.ci_high)} | {_p(t.p_value)} |")
        if ratio:
            row += (" - |" if t.name == "intercept" else
                    f" {_fmt(t.ratio, 3)} ({_fmt(t.ratio_low, 3)} to {_fmt(t.ratio_high, 3)}) |")
        lines.append(row)
    if comparisons:
        lines += ["", "## Compared with", "",
                  "| term | federated | " + " | ".join(c.label for c in comparisons) + " |",
                  "|---|---|" + "---|" * len(comparisons)]
        for t in result.terms:
            cells = []
            for c in comparisons:
                value = c.values.get(t.name)
                cells.append("-" if value is None else _fmt(value[0]))
            lines.append(f"| {t.name} | {_fmt(t.estimate)} | " + " | ".join(cells) + " |")
    if plot:
        lines += ["", f"![forest plot]({plot})"]
    if notes:
        lines += [""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def write_report(
    result: FitResult,
    path: Path,
    *,
    comparisons: Sequence[Estimates] = (),
    truth: Mapping[str, float] | None = None,
    notes: Sequence[str] = (),
) -> Path:
    """Markdown at `path`, forest plot beside it (<stem>_forest.png); returns the plot path."""
    path = Path(path)
    plot = path.with_name(f"{path.stem}_forest.png")
    series = [Estimates.of("federated", result), *comparisons]
    forest_plot(series, plot, truth=truth,
                title=f"{result.spec.outcome}: {result.family} model, 95% intervals")
    all_comparisons = list(comparisons)
    if truth:
        all_comparisons.append(Estimates("true value", {k: (v, v, v) for k, v in truth.items()}))
    text = markdown(result, plot=plot.name, comparisons=all_comparisons, notes=notes)
    _atomic_write(path, text.encode())
    return plot
