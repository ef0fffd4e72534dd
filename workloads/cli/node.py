"""CLI: `python -m workloads node status|reset --node NAME` for a local node."""

from __future__ import annotations

import argparse
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from workloads.cli.args import DefaultsHelp
from workloads.contracts.errors import UserError
from workloads.local_node import DEFAULT_ROOT, LocalNode


def register(sub: argparse._SubParsersAction[Any]) -> None:
    node = sub.add_parser("node", help="a local node's state: status, reset")
    cmds = node.add_subparsers(dest="node_command", required=True, metavar="NODE_COMMAND")

    def node_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--node", required=True, help="local node name (e.g. us)")
        p.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                       help="folder holding the local nodes")

    status = cmds.add_parser(
        "status", help="tables, row counts, the committed generation and the bucket's objects",
        formatter_class=DefaultsHelp,
        description="Show what a local node holds; also removes leftovers of crashed runs "
                    "(temporary files, objects of uncommitted generations).")
    node_args(status)
    status.set_defaults(func=_status)

    reset = cmds.add_parser(
        "reset", help="delete the node's warehouse and bucket (keeps its key)",
        formatter_class=DefaultsHelp,
        description="Delete every table and object of the node. Its key stays, so the node "
                    "keeps its identity. Refused while another command uses the node.")
    node_args(reset)
    reset.add_argument("--yes", action="store_true",
                       help="confirm: without it nothing is deleted")
    reset.set_defaults(func=_reset)


def _existing(args: argparse.Namespace) -> LocalNode:
    node = LocalNode(args.node, args.root)
    if not node.folder.is_dir():
        raise UserError(f"node {node.name!r} has no folder under {args.root}; fix: pass the "
                        f"--root used by generate, or create it with "
                        f"`python -m workloads generate --node {node.name}`")
    return node


def _status(args: argparse.Namespace) -> int:
    from workloads.contracts.catalogue import ALL_TABLES
    from workloads.generator.run import committed, tidy

    node = _existing(args)
    print(f"node {node.name}: {node.folder}")
    print(f"  key        {node.key_path} (kept apart from the data)")
    record = None
    if node.warehouse_path.exists():
        with node.open_warehouse(create=False) as warehouse:
            print(f"  warehouse  {node.warehouse_path} (encrypted)")
            present = set(warehouse.query(
                "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'node'"
            ).column("table_name").to_pylist())
            for table in ALL_TABLES:
                if table.name in present:
                    n = warehouse.query(f"SELECT count(*) AS n FROM {warehouse.table_ref(table)}")
                    print(f"    {table.name:<22}{n.column('n')[0].as_py():>14,} rows")
    else:
        print("  warehouse  (none yet)")
    record = committed(node)
    store = node.store(create=False)
    removed = tidy(node, store, record)
    if record is not None:
        for gen in record["generations"]:
            print(f"  generation {gen['generation']}: {gen['rows']:,} patients, seed "
                  f"{gen['seed']}, files {', '.join(gen['files']) or 'none'} (committed)")
    if removed:
        print(f"  removed {len(removed)} object(s) of uncommitted generations")
    counts = Counter(key.split("/", 1)[0] for key in store.list())
    for prefix, n in sorted(counts.items()):
        print(f"  bucket:{prefix + '/':<20}{n:>8,} object(s), encrypted")
    return 0


def _reset(args: argparse.Namespace) -> int:
    node = _existing(args)
    if not args.yes:
        raise UserError(f"node reset deletes every table and object of node {node.name!r} "
                        f"({node.folder}); fix: add --yes to confirm")
    if node.warehouse_path.exists():
        node.open_warehouse(create=False).close()  # refused if another process has it open
    shutil.rmtree(node.folder)
    print(f"node {node.name}: warehouse and bucket deleted ({node.folder}); key kept at "
          f"{node.key_path}")
    return 0
