"""Fidelity of synthetic data by SDMetrics' QualityReport (0.32).

Column shapes: per column, KS complement (numerical) or TV complement (categorical).
Column pair trends: per pair, correlation similarity (numerical pairs) or contingency
similarity (others). Columns with declared levels are categorical (0/1/2 allele counts
and the diagnosis are categories, not numbers).

The NaN case of SDMetrics 0.32: its pair-trends property averages only the pairs whose
REAL association meets a threshold (|correlation| >= 0.5 or Cramer's V >= 0.3) and is NaN
when no pair does (patient_genomic_data is such a table: its strongest pair, age and the
diagnosis, is far weaker). Its overall score is then the column shapes alone. We handle
this explicitly: `pair_trends` is None in that case, `overall_score` is the mean of the
properties that are defined (as SDMetrics does, said out loud), and `pair_trends_all`
is the same property computed by a second QualityReport whose own thresholds are set to 0
(every pair averaged, whatever its real association): the number that shows whether the
dependence was kept on such tables.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pandas as pd

from workloads.contracts.schema import Table

_TABLE = "table"


def sdmetrics_metadata(columns: list[str], table: Table | None,
                       data: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in columns:
        declared = None
        if table is not None and name in table.column_names:
            declared = table.column(name)
        if declared is not None:
            categorical = bool(declared.levels) or declared.type in ("STRING", "BOOLEAN")
        else:
            series = data[name]
            categorical = (not pd.api.types.is_numeric_dtype(series)
                           or pd.api.types.is_bool_dtype(series))
        out[name] = {"sdtype": "categorical" if categorical else "numerical"}
    return {"tables": {_TABLE: {"columns": out}}}


@dataclass
class QualityEvaluator:
    """`QualityEvaluator(real, synthetic).overall_score`, on the columns both frames hold."""

    real: pd.DataFrame
    synthetic: pd.DataFrame
    table: Table | None = None

    @cached_property
    def _report(self) -> Any:
        return self._generate(all_pairs=False)

    @cached_property
    def _all_pairs_report(self) -> Any:
        return self._generate(all_pairs=True)

    def _generate(self, *, all_pairs: bool) -> Any:
        from sdmetrics.reports import QualityReport  # type: ignore[import-untyped]

        columns = [c for c in self.real.columns if c in self.synthetic.columns]
        if self.table is not None:
            columns = [c for c in columns if c in self.table.column_names
                       and self.table.column(c).role != "identifier"]
        real, synthetic = self.real[columns], self.synthetic[columns]
        metadata = sdmetrics_metadata(columns, self.table, real)
        report = QualityReport()
        if all_pairs:  # the report's own thresholds, set to 0: every pair is averaged
            report.real_correlation_threshold = 0
            report.real_association_threshold = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report.generate({_TABLE: real}, {_TABLE: synthetic}, metadata, verbose=False)
        return report

    def _property(self, name: str) -> float | None:
        props = self._report.get_properties()
        value = float(props.loc[props["Property"] == name, "Score"].iloc[0])
        return None if math.isnan(value) else value

    @property
    def column_shapes(self) -> float:
        value = self._property("Column Shapes")
        if value is None:
            raise ValueError("SDMetrics returned no column-shapes score")
        return value

    @property
    def pair_trends(self) -> float | None:
        """SDMetrics' pair-trends property; None when no real pair meets its threshold."""
        return self._property("Column Pair Trends")

    @property
    def pair_trends_all(self) -> float | None:
        """Mean pair score over every pair (thresholds ignored); None with < 2 columns."""
        props = self._all_pairs_report.get_properties()
        value = float(props.loc[props["Property"] == "Column Pair Trends", "Score"].iloc[0])
        return None if math.isnan(value) else value

    @property
    def overall_score(self) -> float:
        """Mean of the defined properties: shapes and pair trends, or shapes alone when
        SDMetrics' pair trends are NaN (no strongly associated real pair)."""
        pair = self.pair_trends
        return self.column_shapes if pair is None else (self.column_shapes + pair) / 2

    def details(self, prop: str = "Column Shapes") -> pd.DataFrame:
        frame: pd.DataFrame = self._report.get_details(prop)
        return frame

    def summary(self) -> dict[str, Any]:
        return {
            "overall_score": self.overall_score,
            "column_shapes": self.column_shapes,
            "pair_trends": self.pair_trends,
            "pair_trends_all_pairs": self.pair_trends_all,
            "pair_trends_note": None if self.pair_trends is not None else (
                "SDMetrics 0.32 scores pair trends only over pairs whose real association "
                "meets its threshold; none does, so overall = column shapes"
            ),
            "sdmetrics_version": _sdmetrics_version(),
        }


def _sdmetrics_version() -> str:
    from importlib.metadata import version

    return version("sdmetrics")
