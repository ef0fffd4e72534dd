"""Small site frames and local nodes for the synthesis tests."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.workloads.federation.conftest import pubsub_emulator  # noqa: F401 (a fixture)
from tests.workloads.federation.federation_data import patient_rows


def frame(node: str, n: int, seed: int) -> pd.DataFrame:
    return patient_rows(node, n, seed).to_pandas()


@pytest.fixture(scope="session")
def three_sites() -> dict[str, pd.DataFrame]:
    return {name: frame(name, n, i + 1)
            for i, (name, n) in enumerate((("a", 1500), ("b", 1000), ("c", 800)))}
