"""The hub's side of the copula: DP marginals, a repaired correlation, and sampling.

Everything here is post-processing of noisy totals (DP is preserved). The correlation
built from noisy sums is generally not a correlation matrix; it is repaired with Higham's
nearest-correlation algorithm (alternating projections with Dykstra's correction, Higham
2002), then eigenvalues are floored and the diagonal rescaled to 1 so that sampling can
factorise it. If the input is not finite, or the noise has swamped the diagonal sums, it
stops with an error: it never falls back to independent columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from workloads.contracts.errors import UserError
from workloads.synthetic.columns import SynthColumn

EIGEN_FLOOR = 1e-6


class CorrelationRepairError(UserError):
    """The combined dependence statistics cannot be turned into a correlation matrix."""


def probabilities(noisy: np.ndarray, column: str) -> np.ndarray:
    """A DP histogram total -> bin probabilities (negative noisy counts set to 0)."""
    counts = np.clip(np.asarray(noisy, dtype=np.float64), 0.0, None)
    total = counts.sum()
    if not total > 0:
        raise UserError(
            f"column {column}: every noisy count is <= 0 (the noise swamped the data); "
            f"fix: raise epsilon or synthesise from more rows"
        )
    out: np.ndarray = counts / total
    return out


def upper_to_matrix(upper: np.ndarray, d: int) -> np.ndarray:
    matrix = np.zeros((d, d))
    matrix[np.triu_indices(d)] = upper
    return matrix + np.triu(matrix, 1).T


def correlation_from_products(products: np.ndarray, d: int) -> np.ndarray:
    """Sums of z_i z_j (upper triangle, diagonal included) -> a raw correlation estimate."""
    s = upper_to_matrix(products, d)
    diagonal = np.diag(s)
    if not np.all(np.isfinite(s)):
        raise CorrelationRepairError("the combined normal-score sums are not finite")
    if np.any(diagonal <= 0):
        raise CorrelationRepairError(
            "a noisy sum of squared normal scores is <= 0 (noise larger than the data); "
            "fix: raise epsilon or synthesise from more rows"
        )
    scale = np.sqrt(diagonal)
    raw: np.ndarray = s / np.outer(scale, scale)
    return raw


def nearest_correlation(a: np.ndarray, *, tol: float = 1e-9, max_iter: int = 1000) -> np.ndarray:
    """Higham's nearest correlation matrix (Frobenius norm), strictly positive definite."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or not np.all(np.isfinite(a)):
        raise CorrelationRepairError("the raw correlation is not a finite square matrix")
    y = (a + a.T) / 2
    correction = np.zeros_like(y)
    for _ in range(max_iter):
        r = y - correction
        values, vectors = np.linalg.eigh(r)
        x = (vectors * np.clip(values, 0.0, None)) @ vectors.T
        correction = x - r
        y_next = x.copy()
        np.fill_diagonal(y_next, 1.0)
        change = float(np.linalg.norm(y_next - y)) / max(float(np.linalg.norm(y_next)), 1e-300)
        y = y_next
        if change < tol:
            break
    else:
        raise CorrelationRepairError(
            f"nearest-correlation repair did not converge in {max_iter} iterations"
        )
    values, vectors = np.linalg.eigh((y + y.T) / 2)
    y = (vectors * np.clip(values, EIGEN_FLOOR, None)) @ vectors.T
    scale = np.sqrt(np.diag(y))
    out: np.ndarray = y / np.outer(scale, scale)
    np.fill_diagonal(out, 1.0)
    return out


def is_correlation(m: np.ndarray, tol: float = 1e-8) -> bool:
    return bool(
        np.allclose(m, m.T, atol=tol)
        and np.allclose(np.diag(m), 1.0, atol=tol)
        and np.linalg.eigvalsh(m).min() > 0
    )


@dataclass(frozen=True)
class CopulaModel:
    """A released Gaussian copula: DP marginal bin probabilities and a valid correlation."""

    columns: tuple[SynthColumn, ...]
    probabilities: tuple[np.ndarray, ...]
    correlation: np.ndarray
    raw_correlation: np.ndarray  # before repair, for diagnostics (also DP)
    rows_estimate: float  # noisy total row count (post-processing of the histograms)

    def sample(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        """n rows: correlated normals -> uniforms -> inverse marginal CDFs, declared types."""
        if n <= 0:
            raise UserError(f"rows {n} is invalid; fix: ask for at least one row")
        chol = np.linalg.cholesky(self.correlation)
        z = rng.standard_normal((n, len(self.columns))) @ chol.T
        u = stats.norm.cdf(z)
        out: dict[str, np.ndarray] = {}
        for j, (column, p) in enumerate(zip(self.columns, self.probabilities, strict=True)):
            cumulative = np.cumsum(p)
            cumulative[-1] = 1.0
            bins = np.minimum(np.searchsorted(cumulative, u[:, j], side="right"), len(p) - 1)
            lower = cumulative[bins] - p[bins]
            with np.errstate(divide="ignore", invalid="ignore"):
                fractions = np.where(p[bins] > 0, (u[:, j] - lower) / p[bins], 0.5)
            out[column.name] = column.values(bins, np.clip(fractions, 0.0, 1.0))
        return pd.DataFrame(out)
