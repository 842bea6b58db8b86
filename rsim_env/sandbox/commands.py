"""The command lines that start a program at each isolation level.

A run is one exec chain, with no Python code between ``fork`` and the untrusted ``exec`` (so no
``preexec_fn``, which is unsafe with the threads of :class:`~rsim_env.sandbox.pool.SandboxPool`):

1. ``sh -c 'echo $$ > <cgroup.procs> && exec "$@"'`` joins the run's pids cgroup (when there is one);
2. ``setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs ...`` drops root;
3. ``prlimit --as=... --cpu=... --fsize=... --nofile=... --core=0 [--nproc=...]`` sets the rlimits;
4. the isolation: ``bwrap ...``, or ``unshare ...`` with a small mount script, or nothing;
5. ``python3 -B main.py`` in a private work dir.

Each builder returns the argv and how to tell that the chain reached the program (bubblewrap's
``--json-status-fd`` report, or a status file the launch shell writes as root just before the
program starts), so a failure of the sandbox itself is reported as ``sandbox_error`` rather than
blamed on the program. The status file is not a pipe fd because dash, the usual ``/bin/sh``,
cannot redirect to descriptors above 9, and it cannot be forged by the program: it lies in a
root-owned directory the program can only traverse.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from rsim_env.sandbox.host import NOBODY, HostTools
from rsim_env.sandbox.limits import SandboxLimits

PROGRAM_NAME = "main.py"
"""The file name the program's source is written to, inside the work dir."""

BWRAP_WORK_DIR = "/work"
"""The work dir's path inside bubblewrap (a private tmpfs)."""

UNSHARE_WORK_DIR = "/tmp/work"
"""The work dir's path inside the unshare level's private ``/tmp``."""

PROGRAM_PATH = "/usr/local/bin:/usr/bin:/bin"
"""``PATH`` inside the sandbox."""

_SYSTEM_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives")
_HIDDEN_TMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
STATUS_FILE = "rsim-status"
"""Name of the status file, next to the host work dir (``<run dir>/rsim-status``)."""
STARTED = b"rsim-sandbox-started"
"""What the status file (or bubblewrap's status report) holds once the program was reached."""
BWRAP_STARTED = b'"child-pid"'


@dataclass(frozen=True)
class Launch:
    """A ready-to-run command line.

    Attributes:
        argv: the exec chain.
        cwd: the working directory to start it in (``None``: inherit).
        status_file: the file that holds :data:`STARTED` once the program was reached, or ``None``
            when bubblewrap reports that on its status fd instead.
    """

    argv: list[str]
    cwd: str | None
    status_file: str | None


def program_env(home: str) -> dict[str, str]:
    """The whole environment a program gets: nothing of the caller's (no tokens, no proxies)."""
    return {"PATH": PROGRAM_PATH, "HOME": home, "LANG": "C.UTF-8", "TMPDIR": "/tmp"}


def _launcher(tools: HostTools, procs_file: str | None, status_file: str | None) -> list[str]:
    """``sh`` that joins the cgroup and/or writes the status file, then execs the rest."""
    if procs_file is None and status_file is None:
        return []
    script = (f'[ "$0" = - ] || echo $$ > "$0" || exit 125; '
              f'[ "$1" = - ] || echo {STARTED.decode()} > "$1" || exit 125; shift; exec "$@"')
    return [tools.paths["sh"], "-c", script, procs_file or "-", status_file or "-"]


def _drop_root(tools: HostTools) -> list[str]:
    """``setpriv`` to uid/gid 65534 with no supplementary groups, capabilities or new privileges."""
    return [tools.paths["setpriv"], f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--"]


def _rlimits(tools: HostTools, limits: SandboxLimits, nproc: int | None) -> list[str]:
    """``prlimit`` with every rlimit; ``nproc`` only when no pids cgroup holds the process count."""
    cpu = limits.cpu_seconds
    argv = [tools.paths["prlimit"], f"--as={limits.memory_bytes}", f"--cpu={cpu}:{cpu + 1}",
            f"--fsize={limits.file_size_bytes}", f"--nofile={limits.open_files}", "--core=0"]
    if nproc is not None:
        argv.append(f"--nproc={nproc}")
    return argv + ["--"]


def bubblewrap(tools: HostTools, limits: SandboxLimits, *, interpreter: str, procs_file: str | None,
               status_fd: int, file_fds: Sequence[tuple[int, str]], dirs: Sequence[str],
               drop_root: bool, nproc: int | None) -> Launch:
    """bubblewrap: own user/pid/net/ipc/uts/cgroup namespaces, uid 65534, no capabilities.

    The root is a fresh tmpfs holding read-only binds of ``/usr`` (and the ``/bin``, ``/lib*``
    links or dirs), three pieces of ``/etc``, a private ``/proc`` and minimal ``/dev``, a private
    ``/tmp`` and the work dir ``/work``, both size-capped tmpfs. ``/root``, ``/home``, the
    repository, ``/etc/shadow`` and the rest of ``/etc`` do not exist inside. Files (the program
    included) are copied in from memfds with ``--file``, so no host directory is shared at all.
    """
    argv = [tools.paths["bwrap"], "--unshare-all", "--unshare-user", "--uid", str(NOBODY),
            "--gid", str(NOBODY), "--cap-drop", "ALL", "--die-with-parent", "--new-session",
            "--hostname", "sandbox"]
    if "--disable-userns" in tools.bwrap_flags:  # no nested user namespaces: less kernel surface
        argv.append("--disable-userns")
    argv += ["--ro-bind", "/usr", "/usr"]
    for name in _SYSTEM_DIRS:
        path = f"/{name}"
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    for path in _ETC_FILES:
        argv += ["--ro-bind-try", path, path]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    size = ["--size", str(limits.tmpfs_bytes)] if "--size" in tools.bwrap_flags else []
    argv += [*size, "--tmpfs", "/tmp", *size, "--tmpfs", BWRAP_WORK_DIR]
    for directory in dirs:
        argv += ["--dir", f"{BWRAP_WORK_DIR}/{directory}"]
    for fd, name in file_fds:
        argv += ["--perms", "0644", "--file", str(fd), f"{BWRAP_WORK_DIR}/{name}"]
    argv += ["--chdir", BWRAP_WORK_DIR, "--clearenv"]
    for key, value in program_env(BWRAP_WORK_DIR).items():
        argv += ["--setenv", key, value]
    argv += ["--json-status-fd", str(status_fd), "--", interpreter, "-B", PROGRAM_NAME]
    chain = _launcher(tools, procs_file, None) + (_drop_root(tools) if drop_root else [])
    return Launch(chain + _rlimits(tools, limits, nproc) + argv, None, None)


def unshare(tools: HostTools, limits: SandboxLimits, *, interpreter: str, procs_file: str | None,
            work_dir: str, nproc: int | None) -> Launch:
    """util-linux ``unshare``: own mount/pid/net/ipc/uts namespaces, a private ``/tmp``.

    Weaker than bubblewrap: the program sees the host's file system (read access as uid 65534;
    ``/root`` and ``/etc/shadow`` are closed to it by permissions, world-readable files are not),
    and its work dir is a host directory. A shell, pid 1 of the new pid namespace, mounts fresh
    tmpfs over ``/tmp``, ``/var/tmp`` and ``/dev/shm`` (so writes there vanish), binds the work dir
    to ``/tmp/work``, and runs the program as its child: pid 1 ignores signals it has no handler
    for, which would defeat ``SIGXCPU``. When the pid-1 shell exits, the kernel kills the rest.
    As non-root a user namespace (``--map-root-user``) is used and the program keeps the caller's
    uid, with all capabilities dropped.
    """
    argv = [tools.paths["unshare"]]
    if not tools.is_root:
        argv += ["--user", "--map-root-user"]
    argv += ["--mount", "--propagation", "private", "--net", "--pid", "--fork", "--kill-child",
             "--mount-proc", "--ipc", "--uts", "--"]
    mounts = " && ".join(
        f'{{ [ ! -d {d} ] || mount -t tmpfs -o size={limits.tmpfs_bytes},mode=1777,nosuid,nodev '
        f'tmpfs {d}; }}' for d in _HIDDEN_TMP_DIRS)
    # The status file is written through the old cwd (the real work dir), whose parent the new
    # /tmp hides; then the shell moves to the bind of that same dir inside the private /tmp.
    script = (f'cd "$0" && {mounts} && mkdir {UNSHARE_WORK_DIR} && '
              f'mount --bind -c /proc/self/cwd {UNSHARE_WORK_DIR} && '
              f'echo {STARTED.decode()} > ../{STATUS_FILE} && cd {UNSHARE_WORK_DIR} || exit 125; '
              f'"$@"; exit $?')
    argv += [tools.paths["sh"], "-c", script, work_dir]
    drop = (_drop_root(tools) if tools.is_root else
            [tools.paths["setpriv"], "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--"])
    env = [tools.paths["env"], "-i", *(f"{k}={v}" for k, v in program_env(UNSHARE_WORK_DIR).items())]
    program = env + [interpreter, "-B", PROGRAM_NAME]
    chain = _launcher(tools, procs_file, None) + argv + drop + _rlimits(tools, limits, nproc) + program
    return Launch(chain, None, os.path.join(os.path.dirname(work_dir), STATUS_FILE))


def limits_only(tools: HostTools, limits: SandboxLimits, *, interpreter: str, procs_file: str | None,
                work_dir: str, nproc: int | None) -> Launch:
    """Resource limits, a new session and (as root) uid 65534, and nothing else.

    No file-system, network or pid isolation: the program can read what uid 65534 can read, write
    where it may write (``/tmp``), open network connections and see host processes (it cannot
    signal the caller's, which run as another uid). Without a pids cgroup, a program that starts a
    new session can outlive the run. Only for machines without bubblewrap or unshare.
    """
    env = [tools.paths["env"], "-i", *(f"{k}={v}" for k, v in program_env(work_dir).items())]
    status_file = os.path.join(os.path.dirname(work_dir), STATUS_FILE)
    chain = (_launcher(tools, procs_file, status_file) + (_drop_root(tools) if tools.is_root else [])
             + _rlimits(tools, limits, nproc) + env + [interpreter, "-B", PROGRAM_NAME])
    return Launch(chain, work_dir, status_file)
