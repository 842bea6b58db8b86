"""Many sandboxed programs at once: a thread pool sized to the machine.

Each run is its own process tree, so threads only wait on pipes and pidfds; the work happens in
the sandboxes. One worker per usable CPU keeps every core busy with programs that are mostly
single-threaded CPU work (HumanEval and MBPP tests); pass ``workers`` to change it.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Iterable

from rsim_env.errors import ConfigError
from rsim_env.sandbox.result import SandboxResult
from rsim_env.sandbox.run import run_program


def default_workers() -> int:
    """The CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class SandboxPool:
    """Run programs concurrently, each with :func:`~rsim_env.sandbox.run_program`.

    Args:
        workers: how many programs run at once (default: :func:`default_workers`).
        **defaults: keyword arguments of ``run_program`` used for every run (``limits``,
            ``level``, ``strict``, ...); per-call arguments override them.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, workers: int | None = None, **defaults: Any) -> None:
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise ConfigError(f"workers must be a positive integer, got {workers!r}.")
        self.workers = workers or default_workers()
        self.defaults = defaults
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="rsim-sandbox")

    def submit(self, source: str, **kwargs: Any) -> Future[SandboxResult]:
        """Start running ``source``; the future holds its :class:`SandboxResult`."""
        return self._executor.submit(run_program, source, **{**self.defaults, **kwargs})

    def map(self, sources: Iterable[str], **kwargs: Any) -> list[SandboxResult]:
        """Run every program in ``sources``; results come back in the same order."""
        futures = [self.submit(source, **kwargs) for source in sources]
        return [future.result() for future in futures]

    def close(self) -> None:
        """Wait for running programs and stop the workers."""
        self._executor.shutdown(wait=True)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_many(sources: Iterable[str], *, workers: int | None = None, **kwargs: Any) -> list[SandboxResult]:
    """Run every program in ``sources`` in parallel, with ``run_program``'s keyword arguments."""
    with SandboxPool(workers, **kwargs) as pool:
        return pool.map(sources)
