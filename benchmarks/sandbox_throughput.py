"""Sandbox throughput: programs per second, one at a time and with the pool.

    python -m benchmarks.sandbox_throughput [--n 164] [--workers N] [--level bubblewrap]
                                            [--out runs/benchmarks/sandbox_throughput.json]

Each program is a HumanEval canonical solution assembled with its tests exactly as
:class:`~rsim_env.checkers.code.CodeChecker` assembles an answer (prompt, solution, ``check``), so
one run is one sandbox start (bubblewrap or the best level here), one Python start-up and the
tests. The same programs run serially with :func:`~rsim_env.sandbox.run_program`, then through a
:class:`~rsim_env.sandbox.SandboxPool`; both rates, their ratio, the isolation level and the
machine are printed and written as JSON (atomically). Every run must pass: a benchmark of failing
programs would measure the wrong thing.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable, Sequence

from benchmarks.common import machine
from rsim_env.atomic import write_json_atomic
from rsim_env.checkers.code import assemble_program
from rsim_env.sandbox import LEVELS, SandboxPool, SandboxResult, default_workers, isolation_report, run_program
from rsim_env.tasks.code_suites import humaneval_suite

DEFAULT_OUT = "runs/benchmarks/sandbox_throughput.json"


def humaneval_programs(n: int) -> list[str]:
    """The first ``n`` HumanEval problems' canonical solutions, each assembled with its tests."""
    tasks = sorted(humaneval_suite().split("all"), key=lambda t: int(t.id.split("/")[1]))[:n]
    return [assemble_program(t.metadata["reference_solution"], t) for t in tasks]


def _timed(label: str, run: Callable[[Sequence[str]], list[SandboxResult]],
           programs: Sequence[str]) -> dict[str, float]:
    started = time.perf_counter()
    results = run(programs)
    seconds = time.perf_counter() - started
    failed = [r for r in results if not r.ok]
    if failed:
        raise SystemExit(f"{label}: {len(failed)} of {len(results)} runs failed, e.g. ended "
                         f"{failed[0].ended!r}: {failed[0].stderr[-500:]}")
    return {"runs": len(results), "seconds": round(seconds, 3), "runs_per_s": round(len(results) / seconds, 2)}


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=164, help="how many HumanEval programs (max 164)")
    parser.add_argument("--workers", type=int, default=None, help="pool size (default: one per CPU)")
    parser.add_argument("--level", choices=LEVELS, default=None, help="isolation level (default: strongest)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="write the results as JSON here (atomically)")
    args = parser.parse_args(argv)

    programs = humaneval_programs(args.n)
    level = args.level or isolation_report().best
    workers = args.workers or default_workers()
    run_program(programs[0], level=level)  # warm-up: level probe, page cache
    serial = _timed("serial", lambda ps: [run_program(p, level=level) for p in ps], programs)
    with SandboxPool(workers, level=level) as pool:
        pooled = _timed("pool", pool.map, programs)
    ratio = round(pooled["runs_per_s"] / serial["runs_per_s"], 2)

    print(f"sandbox level {level}, {len(programs)} HumanEval programs, pool of {workers} "
          f"on {machine()['cpus']} CPUs")
    print(f"{'':10s} {'runs':>6s} {'seconds':>9s} {'runs/s':>9s}")
    for name, rates in (("serial", serial), ("pool", pooled)):
        print(f"{name:10s} {rates['runs']:6d} {rates['seconds']:9.2f} {rates['runs_per_s']:9.1f}")
    print(f"pool / serial: {ratio:.2f}x")
    results = {"benchmark": "sandbox_throughput", "level": level, "workers": workers,
               "programs": len(programs), "serial": serial, "pool": pooled, "pool_over_serial": ratio,
               "machine": machine()}
    write_json_atomic(args.out, results)
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
