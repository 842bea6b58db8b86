"""Resource limits for one sandboxed program.

Every limit applies at every isolation level. The address-space, CPU, file-size, open-file and
core-dump limits are ``setrlimit`` limits set by ``prlimit`` in the exec chain that starts the
program, so they are inherited by everything the program starts. The process limit is a fresh
pids cgroup per run where one can be created, else ``RLIMIT_NPROC`` for the unprivileged uid the
program runs as (``RLIMIT_NPROC`` alone does nothing for root, which is why the cgroup comes first).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from rsim_env.errors import ConfigError


@dataclass(frozen=True)
class SandboxLimits:
    """What one program may use. The defaults suit HumanEval/MBPP-sized Python programs."""

    memory_bytes: int = 1 << 30
    """Address-space limit (``RLIMIT_AS``); a bigger allocation fails (``MemoryError`` in Python)."""
    cpu_seconds: int = 10
    """CPU-time limit per process (``RLIMIT_CPU``): ``SIGXCPU`` at this, ``SIGKILL`` one second later."""
    wall_seconds: float = 20.0
    """Wall-clock limit; past it the whole process group (and pids cgroup) is killed."""
    file_size_bytes: int = 16 << 20
    """Largest file the program may write (``RLIMIT_FSIZE``); also caps each file in ``files=``."""
    open_files: int = 64
    """Open file descriptors per process (``RLIMIT_NOFILE``)."""
    processes: int = 32
    """Processes and threads the program may run at once (pids cgroup, else ``RLIMIT_NPROC``)."""
    output_bytes: int = 1 << 20
    """Bytes of stdout and of stderr kept; the rest is read and discarded (``truncated`` is set)."""
    tmpfs_bytes: int = 64 << 20
    """Size of each private tmpfs (``/tmp`` and the work dir under bubblewrap, ``/tmp`` under unshare)."""

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"SandboxLimits.{spec.name} must be a positive number, got {value!r}.")
            if spec.name != "wall_seconds" and not isinstance(value, int):
                raise ConfigError(f"SandboxLimits.{spec.name} must be an integer, got {value!r}.")


DEFAULT_LIMITS = SandboxLimits()
"""The limits :func:`~rsim_env.sandbox.run_program` uses when none are given."""
