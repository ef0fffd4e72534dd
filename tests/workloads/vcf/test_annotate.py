"""APOE e2/e3/e4 from rs429358 (C = e4) and rs7412 (T = e2)."""

from __future__ import annotations

import numpy as np
import pytest

from workloads.vcf.annotate import apoe_genotype


@pytest.mark.parametrize(
    ("c429", "t7412", "phased", "expected"),
    [
        ([0, 0], [0, 0], False, ("e3/e3", 0)),
        ([0, 1], [0, 0], False, ("e3/e4", 1)),
        ([1, 1], [0, 0], True, ("e4/e4", 2)),
        ([0, 0], [1, 1], False, ("e2/e2", 0)),
        ([1, 0], [0, 1], True, ("e2/e4", 1)),  # phased: C,C on one haplotype, T,T on other
        ([1, 0], [1, 0], True, ("e1/e3", 0)),  # phased: C,T together is e1, not e4
        ([1, 0], [1, 0], False, ("e2/e4", 1)),  # unphased: the usual reading
        ([1, 1], [1, 0], False, ("e1/e4", 1)),  # counts force one e1
        ([-1, -1], [0, 0], False, (None, None)),
    ],
)
def test_apoe_genotype(
    c429: list[int], t7412: list[int], phased: bool, expected: tuple[str | None, int | None]
) -> None:
    assert apoe_genotype(np.array(c429), np.array(t7412), phased) == expected
