"""Three nodes of very different sizes (us, eu from the shipped profiles, sg from a test
profile), generated once per session into real encrypted warehouses, plus a test-only
table with a count and a continuous outcome for the Poisson and linear families."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.workloads.analysis.analysis_data import VISITS, visits_rows
from workloads.generator.profile import find_profile, load_profile
from workloads.generator.run import WAREHOUSE, generate_node
from workloads.local_node import LocalNode
from workloads.warehouse.duckdb_warehouse import DuckDBWarehouse

SIZES = {"us": 6000, "eu": 1500, "sg": 300}
SG_PROFILE = Path(__file__).parent / "sg.toml"


@pytest.fixture(scope="session")
def node_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("analysis_nodes")
    for seed, (name, rows) in enumerate(SIZES.items(), start=7):
        profile = load_profile(SG_PROFILE) if name == "sg" else find_profile(name)
        generate_node(profile, rows=rows, seed=seed, root=root, formats=(WAREHOUSE,),
                      progress=False)
        with LocalNode(name, root).open_warehouse() as warehouse:
            warehouse.ensure_tables([VISITS])
            warehouse.merge(VISITS, visits_rows(name, rows, seed))
    return root


@pytest.fixture(scope="session")
def warehouses(node_root: Path) -> Iterator[dict[str, DuckDBWarehouse]]:
    opened = {name: LocalNode(name, node_root).open_warehouse(create=False) for name in SIZES}
    yield opened
    for warehouse in opened.values():
        warehouse.close()


@pytest.fixture()
def cli_root(node_root: Path, tmp_path: Path) -> Path:
    """A copy of the nodes for commands that open the warehouses themselves (DuckDB attaches
    a database file once per process, and the session fixture holds the originals open)."""
    copy = tmp_path / "nodes"
    shutil.copytree(node_root, copy)
    return copy
