"""A small node with patients and a stressed fleet (many faults, retired robots, robots under
maintenance at the snapshot), generated once per module: every rule gets exercised."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from workloads.generator import find_profile as patient_profile
from workloads.generator import generate_node
from workloads.local_node import LocalNode
from workloads.robotics.profile import BUILTIN_PROFILE_DIR, FleetConfig, FleetProfile, load_profile
from workloads.robotics.run import generate_fleet
from workloads.warehouse.duckdb_warehouse import DuckDBWarehouse

STRESS = {
    "retired_fraction = 0.04": "retired_fraction = 0.25",
    "in_maintenance_fraction = 0.06": "in_maintenance_fraction = 0.25",
    "fault_base = 0.006": "fault_base = 0.08",
    "abort_base = 0.004": "abort_base = 0.05",
    "complication_intercept = -2.4": "complication_intercept = -1.0",
}
SMALL = dict(robots=8, facilities=3, surgeons=10, technicians=4, procedures=80, maintenance=16,
             hz=1.0)


def write_fleet_profile(folder: Path, name: str, replace: dict[str, str]) -> Path:
    text = (BUILTIN_PROFILE_DIR / "us.toml").read_text()
    text = text.replace('id_prefix = "US"', f'id_prefix = "{name.upper()}"')
    for old, new in replace.items():
        assert old in text, f"test bug: {old!r} is not in the US profile"
        text = text.replace(old, new)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def add_patients(root: Path, node: str, rows: int = 300) -> None:
    generate_node(patient_profile(node if node in ("us", "eu") else "us"), rows=rows, seed=1,
                  root=root, formats=("warehouse",), progress=False)


@pytest.fixture(scope="module")
def stressed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FleetProfile,
                                                                       FleetConfig, Path]]:
    base = tmp_path_factory.mktemp("robotics")
    profile = load_profile(write_fleet_profile(base / "profiles", "us", STRESS))
    add_patients(base, "us")
    config = profile.config(**SMALL)
    generate_fleet(profile, config, seed=7, root=base, progress=False)
    yield profile, config, base


@pytest.fixture
def warehouse(stressed: tuple[FleetProfile, FleetConfig, Path]) -> Iterator[DuckDBWarehouse]:
    with LocalNode("us", stressed[2]).open_warehouse(create=False) as wh:
        yield wh
