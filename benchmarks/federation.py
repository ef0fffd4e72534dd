"""Federated logistic regression vs the pooled fit, on the same data in the same run.

    .venv/bin/python -m benchmarks.federation                 # 2 nodes x 1,000,000 patients
    .venv/bin/python -m benchmarks.federation --patients 100000 --no-emulator
    .venv/bin/python -m benchmarks.federation --dp             # + utility at epsilon 1, 3, 10

Baseline: Newton-Raphson on the concatenated rows of both nodes (numpy, the same
algorithm and tolerance; statsmodels Logit timed too). Measured: Newton rounds, wall time
of the federated fit in-process (node workers as threads, data already read) and over the
Pub/Sub emulator (node workers as processes), bytes the hub received per round, and the
largest coefficient difference to the pooled fit. Target: 1e-6, in-process within 3x.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from workloads.federation import local_stats, privacy, runner
from workloads.federation.coordinator import Coordinator, RunConfig
from workloads.federation.transport import Counted
from workloads.local_node import LocalNode

NODES = ("us", "eu")


def make_nodes(root: Path, patients: int) -> list[LocalNode]:
    from workloads.generator.profile import find_profile
    from workloads.generator.run import WAREHOUSE, generate_node

    for seed, node in enumerate(NODES, start=1):
        generate_node(find_profile(node), rows=patients, seed=seed, root=root, formats=(WAREHOUSE,))
    return [LocalNode(n, root) for n in NODES]


def pooled_newton(data: list[local_stats.NodeData], tolerance: float) -> tuple[np.ndarray, int]:
    """The baseline: the same Newton iteration on all rows in one place."""
    design = np.vstack([d.design() for d in data])
    y = np.concatenate([d.y for d in data])
    beta = np.zeros(design.shape[1])
    rounds, step = 0, np.ones_like(beta)
    while np.max(np.abs(step)) >= tolerance and rounds < 50:
        gradient, hessian, _ = local_stats.newton_terms(design, y, beta)
        step = np.linalg.solve(hessian, gradient)
        beta = beta + step
        rounds += 1
    from workloads.federation.coordinator import _to_original_scale

    return _to_original_scale() @ beta, rounds


def timed_fit(hub: Counted, config: RunConfig) -> tuple[float, Coordinator, np.ndarray, int]:
    coordinator = Coordinator(hub, config)
    start = time.perf_counter()
    fit = coordinator.fit()
    wall = time.perf_counter() - start
    coordinator.finish()
    return wall, coordinator, fit.coefficients, fit.rounds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=1_000_000, help="rows per node")
    parser.add_argument("--no-emulator", action="store_true", help="skip the Pub/Sub run")
    parser.add_argument("--dp", action="store_true", help="also measure DP at eps 1, 3, 10")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (best is shown)")
    parser.add_argument("--dp-repeats", type=int, default=3, help="DP runs per epsilon")
    parser.add_argument("--root", type=Path, default=None, help="reuse generated nodes here")
    args = parser.parse_args()

    root = args.root or Path(tempfile.mkdtemp(prefix="federation-bench-"))
    start = time.perf_counter()
    nodes = (
        [LocalNode(n, root) for n in NODES]
        if args.root and (root / NODES[0]).exists()
        else make_nodes(root, args.patients)
    )
    print(f"nodes: {', '.join(NODES)} under {root} ({time.perf_counter() - start:.1f} s)")
    data = [local_stats.load(n) for n in nodes]
    total = sum(d.n for d in data)
    print(f"rows: {' + '.join(str(d.n) for d in data)} = {total}")
    config = RunConfig(nodes=NODES, round_timeout=300)

    # Best of --repeats for both sides: the machine is shared, the minimum is the least noisy.
    pooled_walls = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        pooled, pooled_rounds = pooled_newton(data, config.tolerance)
        pooled_walls.append(time.perf_counter() - start)
    pooled_wall = min(pooled_walls)
    print(
        f"pooled numpy Newton (baseline): {pooled_rounds} iterations, best of "
        f"{args.repeats} {pooled_wall:.3f} s (all: {', '.join(f'{w:.2f}' for w in pooled_walls)})"
    )

    import statsmodels.api as sm

    start = time.perf_counter()
    x = sm.add_constant(np.vstack([d.x for d in data]))
    y = np.concatenate([d.y for d in data])
    statsmodels_params = sm.Logit(y, x).fit(disp=0, tol=1e-12).params
    print(
        f"pooled statsmodels Logit: {time.perf_counter() - start:.3f} s, "
        f"max |diff| to numpy baseline {np.max(np.abs(statsmodels_params - pooled)):.1e}"
    )
    del x, y

    walls = []
    for _ in range(args.repeats):
        with runner.in_process(nodes, preload=True) as hub:
            wall, coordinator, coefficients, rounds = timed_fit(hub, RunConfig(nodes=NODES))
        walls.append(wall)
    wall = min(walls)
    diff = np.max(np.abs(coefficients - pooled))
    per_round = coordinator.bytes_per_round
    print(
        f"federated in-process: {rounds} Newton rounds (+ key exchange + AUC round), best of "
        f"{args.repeats} {wall:.3f} s (all: {', '.join(f'{w:.2f}' for w in walls)}) "
        f"= {wall / pooled_wall:.2f}x the pooled baseline (target <= 3x); "
        f"max |coef diff| {diff:.1e} (target 1e-6)"
    )
    print(f"  bytes received by the hub per round: {per_round} (independent of rows)")

    if not args.no_emulator:
        from workloads.federation.emulator import running_emulator
        from workloads.federation.transport import PubSubHub, create_resources

        with running_emulator() as host:
            os.environ["PUBSUB_EMULATOR_HOST"] = host
            project = f"bench-{uuid.uuid4().hex[:8]}"
            create_resources(project, list(NODES))
            with runner.worker_processes(root, list(NODES), project, host):
                hub = Counted(PubSubHub(project))
                warm = Coordinator(hub, RunConfig(nodes=NODES, run_id=config.run_id + "w"))
                warm.statistics()  # workers start and read their rows; not timed
                wall_ps, coordinator, coefficients, rounds = timed_fit(hub, config)
                warm.finish()
        diff = np.max(np.abs(coefficients - pooled))
        print(
            f"federated over the Pub/Sub emulator (worker processes): {rounds} Newton rounds, "
            f"{wall_ps:.3f} s = {wall_ps / pooled_wall:.2f}x the pooled baseline; "
            f"max |coef diff| {diff:.1e}; bytes per round {coordinator.bytes_per_round}"
        )

    if args.dp:
        print(
            f"differential privacy (delta 1e-6, clip 3, 6 rounds; mean of {args.dp_repeats} "
            f"runs; AUC per node vs the pooled model's AUC):"
        )
        pooled_scaled = np.linalg.solve(_transform(), pooled)
        pooled_auc = [local_stats.auc(d, pooled_scaled) for d in data]
        for epsilon in (1.0, 3.0, 10.0):
            dp = privacy.DPConfig(epsilon=epsilon)
            errors, aucs, spent = [], [], 0.0
            for _ in range(args.dp_repeats):
                with runner.in_process(nodes, preload=True) as hub:
                    coordinator = Coordinator(hub, RunConfig(nodes=NODES, dp=dp))
                    fit = coordinator.fit()
                    coordinator.finish()
                errors.append(np.abs(fit.coefficients - pooled))
                aucs.append([fit.auc[n] for n in NODES])
                spent = fit.epsilon or 0.0
            error = np.mean(errors, axis=0)
            auc_text = ", ".join(
                f"{n} {a:.4f} (pooled {p:.4f})"
                for n, a, p in zip(NODES, np.mean(aucs, axis=0), pooled_auc, strict=True)
            )
            print(
                f"  epsilon {epsilon:>4}: spent {spent:.2f}, noise multiplier "
                f"{privacy.calibrate(dp):.2f}, mean |coef error| per term "
                f"{np.array2string(error, precision=4)}, AUC {auc_text}"
            )
        true_rate = float(np.mean(np.concatenate([d.y for d in data])))
        print(
            "differentially private statistics (1 release; error of the combined 'all' "
            f"cell, mean of {args.dp_repeats} runs; true n {total}, rate {true_rate:.4f}):"
        )
        for epsilon in (1.0, 3.0, 10.0):
            dp = privacy.DPConfig(epsilon=epsilon, rounds=1)
            n_error, rate_error = [], []
            for _ in range(args.dp_repeats):
                with runner.in_process(nodes, preload=True) as hub:
                    coordinator = Coordinator(hub, RunConfig(nodes=NODES, dp=dp))
                    combined = coordinator.statistics()[0].values["combined"]
                    coordinator.finish()
                assert combined is not None
                n_error.append(abs(combined[0] - total))
                rate_error.append(abs(combined[2] - true_rate))
            print(
                f"  epsilon {epsilon:>4}: mean |n error| {np.mean(n_error):.1f}, "
                f"mean |rate error| {np.mean(rate_error):.2e}"
            )
    return 0


def _transform() -> np.ndarray:
    from workloads.federation.coordinator import _to_original_scale

    return _to_original_scale()


if __name__ == "__main__":
    sys.exit(main())
