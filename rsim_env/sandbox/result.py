"""The record of one sandboxed run, and the names of isolation levels and endings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

IsolationLevel = Literal["bubblewrap", "unshare", "limits"]
"""How strongly a program was isolated, strongest first (see :mod:`rsim_env.sandbox`)."""

LEVELS: tuple[IsolationLevel, ...] = ("bubblewrap", "unshare", "limits")
"""Every isolation level, strongest first."""

Ended = Literal["ok", "error", "timeout", "cpu", "memory", "filesize", "killed", "sandbox_error"]
"""Why a run ended:

- ``ok``: exit status 0.
- ``error``: a non-zero exit status not explained by a limit (an exception, a failed test).
- ``timeout``: the wall-clock limit passed and the sandbox killed the program.
- ``cpu``: the CPU-time limit killed the program (``SIGXCPU``, or ``SIGKILL`` at the hard limit).
- ``memory``: the address-space limit made an allocation fail (Python's ``MemoryError``).
- ``filesize``: the file-size limit stopped a write (``SIGXFSZ`` or ``EFBIG``).
- ``killed``: another signal ended the program (e.g. ``SIGSEGV``).
- ``sandbox_error``: the sandbox itself failed before the program started; ``stderr`` says why.
"""


@dataclass(frozen=True)
class SandboxResult:
    """What happened to one program.

    Attributes:
        ended: why it ended (see :data:`Ended`).
        exit_code: exit status in shell convention, ``128 + N`` for death by signal ``N``
            (namespace levels can only report it that way), ``None`` if it never started.
        signal: the signal that ended it, if any.
        stdout: the first ``limits.output_bytes`` bytes of stdout, decoded as UTF-8 (invalid bytes
            replaced).
        stderr: the same for stderr.
        stdout_truncated: stdout was longer than the cap.
        stderr_truncated: stderr was longer than the cap.
        duration_s: wall-clock seconds from start to exit.
        level: the isolation level that ran.
        notes: every way this run was weaker than full bubblewrap isolation with a pids cgroup
            (empty when nothing was weaker).
        process_limit_hit: the pids cgroup refused at least one fork (``False`` without a cgroup).
    """

    ended: Ended
    exit_code: int | None
    signal: int | None
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    duration_s: float
    level: IsolationLevel
    notes: tuple[str, ...] = ()
    process_limit_hit: bool = False

    @property
    def ok(self) -> bool:
        """The program exited with status 0."""
        return self.ended == "ok"

    @property
    def truncated(self) -> bool:
        """Either output stream was cut at the cap."""
        return self.stdout_truncated or self.stderr_truncated
