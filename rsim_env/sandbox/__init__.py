"""Run untrusted programs (the reasoner's code) in a sandbox.

    from rsim_env.sandbox import run_program, SandboxLimits
    result = run_program("print(input()[::-1])", stdin="abc", limits=SandboxLimits(wall_seconds=5))
    result.ended, result.stdout, result.level        # ('ok', 'cba\\n', 'bubblewrap')

Every program runs in a fresh process tree, never in the caller's process, at one of three
isolation levels, strongest first:

========== ==============================================================================
bubblewrap own user, pid, network, ipc, uts and cgroup namespaces; uid/gid 65534; all
           capabilities dropped; no new privileges; dies with its parent; new session; a
           tmpfs root with read-only ``/usr`` (+ ``/bin``, ``/lib*`` links) and three files of
           ``/etc``; private size-capped tmpfs ``/tmp`` and work dir ``/work``; clean environment.
unshare    util-linux ``unshare``: own mount, pid, network, ipc and uts namespaces; uid 65534;
           fresh tmpfs over ``/tmp``, ``/var/tmp``, ``/dev/shm``; the rest of the host file system
           stays visible (readable where uid 65534 may read). Only where bubblewrap is missing.
limits     resource limits, uid 65534 and a new session only. Only where both are missing.
========== ==============================================================================

On every level: address space, CPU seconds, file size, open files, no core dumps (``prlimit`` in
the launch chain), a process limit (a fresh pids cgroup per run, else ``RLIMIT_NPROC`` as uid
65534), a wall-clock kill of the whole process group (and cgroup), output caps, and removal of
every temporary directory and cgroup. See :class:`SandboxLimits`.

Weaker levels are logged loudly (once per process) and recorded in every result
(``result.level`` and ``result.notes``); ``strict=True`` or ``RSIM_SANDBOX_STRICT=1`` refuses them
with :class:`SandboxUnavailableError`. :func:`isolation_report` says which levels work here and why
the others do not.

What we found on the development machine (a Docker-style container, running as root, Debian 12,
kernel 6.18, bubblewrap 0.8.0, util-linux 2.38):

- bubblewrap works both as root and after ``setpriv`` drops to uid 65534 (unprivileged user
  namespaces are allowed), so it runs as 65534 outside its namespace too, not only inside (as
  root, bubblewrap would map the sandbox's uid 65534 to host root, leaving only the mount
  namespace between the program and root-owned files);
- the v1 ``pids`` cgroup hierarchy is writable (cgroup v2 is mounted but has no pids controller),
  so every run gets its own pids cgroup; ``unshare`` works as root;
- started as an unprivileged user (uid 65534) instead, all three levels still work: bubblewrap
  without dropping, no cgroup (so ``RLIMIT_NPROC``), ``unshare`` through a user namespace;
- a bubblewrap run of a trivial program takes about 15-20 ms; 164 HumanEval programs run at about
  16/s serially and 38/s with a pool of two on two (shared) cores
  (``python -m benchmarks.sandbox_throughput``).

Where unprivileged user namespaces are restricted (e.g. Ubuntu 24.04's AppArmor default for
programs without a profile), bubblewrap may only work as root; :func:`isolation_report` says
what failed.
"""

from rsim_env.sandbox.errors import SandboxUnavailableError
from rsim_env.sandbox.limits import DEFAULT_LIMITS, SandboxLimits
from rsim_env.sandbox.pool import SandboxPool, default_workers, run_many
from rsim_env.sandbox.result import LEVELS, Ended, IsolationLevel, SandboxResult
from rsim_env.sandbox.run import (
    DEFAULT_INTERPRETER,
    STRICT_ENV_VAR,
    IsolationReport,
    isolation_report,
    run_program,
    strict_from_env,
)

__all__ = [
    "DEFAULT_INTERPRETER", "DEFAULT_LIMITS", "LEVELS", "STRICT_ENV_VAR", "Ended", "IsolationLevel", "IsolationReport",
    "SandboxLimits", "SandboxPool", "SandboxResult", "SandboxUnavailableError", "default_workers",
    "isolation_report", "run_many", "run_program", "strict_from_env",
]
