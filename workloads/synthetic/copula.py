"""The hub's side of the copula: DP marginals, a repaired correlation, and sampling.

Everything here is post-processing of noisy totals (DP is preserved). The correlation
built from noisy sums is generally not a correlation matrix; it is repaired with Higham's
nearest-correlation algorithm (alternating projections with Dykstra's correction, Higham
2002), then eigenvalues are floored and the diagonal rescaled to 1 so that sampling can
factorise it. If the input is not finite, or the noise has swamped the diagonal sums, it
stops with an error: it never falls back to independent columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

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


def clipped_variance(clip: float) -> float:
    """E[min(max(Z, -c), c)^2] for a standard normal Z: the expected square of a score."""
    inside = 2 * stats.norm.cdf(clip) - 1 - 2 * clip * stats.norm.pdf(clip)
    return float(inside + 2 * clip**2 * stats.norm.sf(clip))


def correlation_from_products(products: np.ndarray, d: int, rows: float,
                              clip: float) -> np.ndarray:
    """Sums of z_i z_j over rows (i < j) -> the observed normal-score correlation.

    Scores under the pooled marginals are standard normal (clipped), so the diagonal sums
    are known, rows * E[clip(Z)^2]: they are not released (less sensitivity, and no noisy
    sum of squares that could come out <= 0). `rows` is the DP row count."""
    products = np.asarray(products, dtype=np.float64)
    if not (np.all(np.isfinite(products)) and math.isfinite(rows)):
        raise CorrelationRepairError("the combined normal-score sums are not finite")
    if not rows > 0:
        raise CorrelationRepairError(
            "the noisy row count is <= 0 (noise larger than the data); "
            "fix: raise epsilon or synthesise from more rows"
        )
    raw = np.eye(d)
    upper = np.triu_indices(d, k=1)
    raw[upper] = products / (rows * clipped_variance(clip))
    out: np.ndarray = np.triu(raw, 1) + np.triu(raw, 1).T + np.eye(d)
    return out


HERMITE_TERMS = 150  # accurate to ~1e-6 for |r| <= 0.95
_LATENT_LIMIT = 0.99


def hermite_coefficients(p: np.ndarray, discrete: bool, terms: int = HERMITE_TERMS) -> np.ndarray:
    """c_n = E[g(Z) He_n(Z)] / sqrt(n!), n = 1..terms, for the column's normal score g.

    A discrete column's score is the latent normal re-drawn inside its bin (the jitter), so
    as a function of the latent Z it is g(Z) = E[Z | bin(Z)] = (phi(t_k-1) - phi(t_k)) / p_k
    on bin k (thresholds t from the marginal). A continuous column's score is Z itself
    (c_1 = 1, the rest 0). Mehler's formula then gives, for latent correlation r,
    E[g_i(Z_i) g_j(Z_j)] = sum_n r^n c_i,n c_j,n."""
    out = np.zeros(terms)
    if not discrete:
        out[0] = 1.0
        return out
    p = np.asarray(p, dtype=np.float64)
    cuts = np.clip(np.cumsum(p)[:-1], 0.0, 1.0)
    t = np.concatenate([[-np.inf], stats.norm.ppf(cuts), [np.inf]])
    density = np.where(np.isfinite(t), stats.norm.pdf(np.where(np.isfinite(t), t, 0.0)), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.where(p > 0, (density[:-1] - density[1:]) / p, 0.0)
    finite_t = np.where(np.isfinite(t), t, 0.0)
    previous, current = np.zeros_like(finite_t), np.ones_like(finite_t)  # He_-1, He_0 (normed)
    for n in range(1, terms + 1):
        edge = density * current  # phi(t) He_{n-1}(t)/sqrt((n-1)!), 0 at +-inf
        out[n - 1] = float(np.sum(m * (edge[:-1] - edge[1:]))) / np.sqrt(n)
        previous, current = current, (finite_t * current - np.sqrt(n - 1) * previous) / np.sqrt(n)
    return out


def latent_correlation(observed: np.ndarray, columns: tuple[SynthColumn, ...],
                       marginals: tuple[np.ndarray, ...]) -> np.ndarray:
    """The copula's latent correlation from the observed normal-score correlation.

    Jittered scores of discrete columns are attenuated versions of the latent normals (by
    exactly Mehler's series above); sampling discretises again. Inverting the series per
    pair removes the attenuation, so the sampled bins have the pairwise dependence of the
    data instead of a doubly attenuated one. Out-of-range values (noise) are clamped to
    the achievable range; the matrix is then repaired (nearest correlation)."""
    d = len(columns)
    coefficients = [hermite_coefficients(p, c.kind != "continuous")
                    for c, p in zip(columns, marginals, strict=True)]
    powers = np.arange(1, HERMITE_TERMS + 1)
    out = np.eye(d)
    for i in range(d):
        for j in range(i + 1, d):
            product = coefficients[i] * coefficients[j]

            def moment(r: float, product: np.ndarray = product) -> float:
                return float(np.sum(product * r**powers))

            target = float(observed[i, j])
            low, high = moment(-_LATENT_LIMIT), moment(_LATENT_LIMIT)
            if target <= min(low, high) or target >= max(low, high) or low == high:
                nearest = -_LATENT_LIMIT if abs(target - low) < abs(target - high) else (
                    _LATENT_LIMIT)
                out[i, j] = out[j, i] = 0.0 if low == high else nearest
                continue
            out[i, j] = out[j, i] = optimize.brentq(
                lambda r, t=target: moment(r) - t, -_LATENT_LIMIT, _LATENT_LIMIT, xtol=1e-10
            )
    return out


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
