"""The public shape of a synthetic table, read from its declared contract.

Every bin edge and level comes from the table's declared bounds and levels (public,
known before any data is seen), never from the data, so the histograms' bins cost no
privacy and are the same at every node.

- categorical: a column with declared levels (allele counts 0/1/2, the diagnosis): one bin
  per level; synthetic values are exactly the levels.
- integer: an INTEGER column with bounds and at most MAX_INTEGER_BINS values: one bin per
  integer; synthetic values are integers inside the bounds.
- continuous: any other bounded numeric column: CONTINUOUS_BINS equal-width bins over the
  bounds; synthetic values are uniform inside their bin (a piecewise-linear CDF), inside
  the bounds.
Values outside the bounds are clamped into them (the contract says they are invalid);
values outside the levels are counted in no bin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from workloads.contracts.errors import UserError
from workloads.contracts.schema import Table

Kind = Literal["categorical", "integer", "continuous"]
MAX_INTEGER_BINS = 128
CONTINUOUS_BINS = 40


@dataclass(frozen=True)
class SynthColumn:
    name: str
    kind: Kind
    type: str  # the declared type: INTEGER, FLOAT, STRING, BOOLEAN
    levels: tuple[str | int, ...] = ()
    bounds: tuple[float, float] = (0.0, 0.0)
    bins: int = 0

    @property
    def width(self) -> float:
        return (self.bounds[1] - self.bounds[0]) / self.bins

    def bin_sql(self, ref: str = "") -> str:
        """SQL for the row's bin index (0..bins-1), NULL when it falls in no bin."""
        col = f'{ref}"{self.name}"'
        if self.kind == "categorical":
            arms = " ".join(f"WHEN {_literal(v)} THEN {i}" for i, v in enumerate(self.levels))
            return f"(CASE {col} {arms} ELSE NULL END)"
        low, high = self.bounds
        clamped = f"least(greatest(CAST({col} AS DOUBLE), {low!r}), {high!r})"
        if self.kind == "integer":
            return f"CAST(round({clamped}) - {low!r} AS BIGINT)"
        return (
            f"least(CAST(floor(({clamped} - {low!r}) / {self.width!r}) AS BIGINT), {self.bins - 1})"
        )

    def fraction_sql(self) -> str:
        """SQL for the position inside its bin in [0, 1] (continuous columns only)."""
        low, high = self.bounds
        clamped = f'least(greatest(CAST("{self.name}" AS DOUBLE), {low!r}), {high!r})'
        return (
            f"least(greatest(({clamped} - {low!r}) / {self.width!r} - {self.bin_sql()}, 0.0), 1.0)"
        )

    def values(self, bins: np.ndarray, fractions: np.ndarray) -> np.ndarray:
        """Synthetic values of the declared type from bin indices and in-bin positions."""
        out: np.ndarray
        if self.kind == "categorical":
            out = np.asarray(self.levels, dtype=object if self.type == "STRING" else None)[bins]
            return out
        low, high = self.bounds
        if self.kind == "integer":
            out = (bins + int(low)).astype(np.int64)
            return out
        values: np.ndarray = np.clip(low + (bins + fractions) * self.width, low, high)
        return values.astype(np.int64) if self.type == "INTEGER" else values


def _literal(value: str | int) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(int(value))


def synth_columns(table: Table) -> tuple[SynthColumn, ...]:
    """The table's releasable, non-identifier columns, each with its public bins."""
    out: list[SynthColumn] = []
    for column in table.columns:
        if not column.releasable or column.role == "identifier" or column.mode == "REPEATED":
            continue
        if column.levels:
            out.append(SynthColumn(column.name, "categorical", column.type, levels=column.levels,
                                   bins=len(column.levels)))
        elif column.bounds is not None and column.type in ("INTEGER", "FLOAT"):
            low, high = column.bounds
            if column.type == "INTEGER" and high - low + 1 <= MAX_INTEGER_BINS:
                out.append(SynthColumn(column.name, "integer", column.type,
                                       bounds=(float(int(low)), float(int(high))),
                                       bins=int(high) - int(low) + 1))
            else:
                out.append(SynthColumn(column.name, "continuous", column.type,
                                       bounds=(float(low), float(high)), bins=CONTINUOUS_BINS))
        # a releasable column with neither levels nor bounds has no public bins: skipped
    if len(out) < 2:
        raise UserError(
            f"table {table.name} has {len(out)} releasable column(s) with public bounds or "
            f"levels; fix: declare bounds/levels and releasable=True on at least two columns "
            f"in workloads/contracts/tables/"
        )
    return tuple(out)
