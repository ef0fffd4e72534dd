"""How long rendering a stack offline takes, against the fixed cost of a mocked Pulumi run.

    .venv/bin/python -m benchmarks.render [--repeat 5]

Baseline (same process, same mocks): a program that declares one bucket, i.e. what any
mocked Pulumi run costs before the node's ~80 resources. Reported: the cold first render
of `us` (from before `import pulumi` to the files' text, as `python -m infra.render` pays
it), then the median of warm renders of every stack (capture + manifest + posture +
policy verdicts) and its ratio to the baseline. Target: one stack under 5 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable


def one_bucket() -> None:
    import pulumi_gcp as gcp

    gcp.storage.Bucket("only", name="only-bucket", location="us-central1")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    start = time.perf_counter()
    import pulumi_gcp as gcp

    from infra.capture import capture_stack
    from infra.render import GOLDEN_STACKS, render

    sdk = timed(lambda: gcp.compute.Network)  # the provider SDK's largest module
    render("us")
    cold = time.perf_counter() - start
    baseline = statistics.median(
        timed(lambda: capture_stack("us", program=one_bucket)) for _ in range(args.repeat)
    )
    print(
        f"cold: imports + first render of us {cold:6.2f} s "
        f"(of which {sdk:.2f} s loading pulumi_gcp.compute)"
    )
    print(f"baseline: mocked run declaring one bucket (median of {args.repeat}): {baseline:6.3f} s")
    worst = 0.0
    for stack in GOLDEN_STACKS:
        resources = len(capture_stack(stack))
        capture = statistics.median(
            timed(lambda s=stack: capture_stack(s)) for _ in range(args.repeat)
        )
        full = statistics.median(timed(lambda s=stack: render(s)) for _ in range(args.repeat))
        worst = max(worst, full)
        print(
            f"{stack:>4}: {resources:3d} resources  capture {capture:6.3f} s "
            f"({capture / baseline:5.1f}x baseline)  render {full:6.3f} s "
            f"({full / baseline:5.1f}x baseline)"
        )
    print(f"target: one stack < 5 s: slowest warm render {worst:.2f} s, cold {cold:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
