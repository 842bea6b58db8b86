"""Run one untrusted program in a fresh sandbox and report what happened.

The steps of :func:`run_program`: choose the strongest isolation level that works here (or the
one asked for; strict mode refuses anything weaker than bubblewrap), make a pids cgroup, put the
program and its files where the sandbox will find them (memfds copied in by bubblewrap, else a
private host directory), start the exec chain of :mod:`rsim_env.sandbox.commands` in a new
session, read stdout/stderr up to the cap while waiting on a pidfd for exit or the wall-clock
deadline, kill the whole process group and cgroup, and remove everything it made.

Which levels work is decided once per process by trial runs of a tiny program
(:func:`isolation_report`): a level "exists" only if a program really ran under it here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import selectors
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Mapping

from rsim_env.errors import ConfigError
from rsim_env.sandbox import commands
from rsim_env.sandbox.cgroups import CgroupRoot, PidsCgroup, pids_cgroup_root
from rsim_env.sandbox.errors import SandboxUnavailableError
from rsim_env.sandbox.host import NOBODY, SYSTEM_PATH, HostTools, host_tools
from rsim_env.sandbox.limits import DEFAULT_LIMITS, SandboxLimits
from rsim_env.sandbox.result import LEVELS, Ended, IsolationLevel, SandboxResult

logger = logging.getLogger("rsim_env.sandbox")

def _system_python() -> str:
    for path in ("/usr/bin/python3", "/usr/local/bin/python3"):  # Debian/Ubuntu; python:3.x images
        if os.access(path, os.X_OK):
            return path
    return "/usr/bin/python3"


DEFAULT_INTERPRETER = _system_python()
"""The system Python (``/usr/bin/python3``, else ``/usr/local/bin/python3``): readable by uid 65534
and inside bubblewrap's ``/usr``; a pyenv or venv interpreter under ``/root`` or a home directory
is neither."""

STRICT_ENV_VAR = "RSIM_SANDBOX_STRICT"
"""Set to ``1`` to refuse every isolation level weaker than bubblewrap (CI sets it)."""

SANDBOX_PROCESSES = 3
"""Processes of the sandbox itself counted by the pids cgroup (bwrap, its pid-1 reaper, ...)."""

_DRAIN_GRACE_S = 1.0  # after exit or kill, how long leftover writers may keep the pipes open
_TAIL_BYTES = 8192  # the end of stderr kept for classifying the ending, even past the cap
_INSTALL_HINT = "Install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`)."


def strict_from_env() -> bool:
    """``RSIM_SANDBOX_STRICT`` is set to a true value."""
    return os.environ.get(STRICT_ENV_VAR, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class IsolationReport:
    """Which isolation levels work on this machine, found by trial runs.

    Attributes:
        levels: the usable levels, strongest first.
        unavailable: for each other level, why it does not work here.
        bwrap_drops_root: bubblewrap runs as uid 65534 outside too (not only inside its user
            namespace), so a mount escape would still only have nobody's rights.
        cgroup: where per-run pids cgroups are made, or ``None`` (then ``RLIMIT_NPROC``).
        tools: the tools found.
    """

    levels: tuple[IsolationLevel, ...]
    unavailable: Mapping[IsolationLevel, str]
    bwrap_drops_root: bool
    cgroup: CgroupRoot | None
    tools: HostTools = field(repr=False)

    @property
    def best(self) -> IsolationLevel | None:
        """The strongest usable level."""
        return self.levels[0] if self.levels else None


@dataclass
class _Collected:
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    stdout_total: int = 0
    stderr_total: int = 0
    stderr_tail: bytes = b""
    timed_out: bool = False
    returncode: int = 0
    duration_s: float = 0.0


_report: IsolationReport | None = None
_report_lock = threading.Lock()
_warned: set[IsolationLevel] = set()
_warned_lock = threading.Lock()


def isolation_report() -> IsolationReport:
    """Probe (once per process, thread-safe) which isolation levels work here."""
    global _report
    with _report_lock:
        if _report is None:
            _report = _probe()
        return _report


def _probe() -> IsolationReport:
    tools = host_tools()
    cgroup = pids_cgroup_root()
    unavailable: dict[IsolationLevel, str] = {}
    levels: list[IsolationLevel] = []
    drops_root = False
    if not os.access(DEFAULT_INTERPRETER, os.X_OK):
        reason = (f"{DEFAULT_INTERPRETER} is missing; the sandbox runs programs with the system "
                  "Python (Debian/Ubuntu: `apt-get install python3`)")
        return IsolationReport((), {lvl: reason for lvl in LEVELS}, False, cgroup, tools)
    needs_root_tools = ("setpriv",) if tools.is_root else ()
    requirements: dict[IsolationLevel, tuple[str, ...]] = {
        "bubblewrap": ("sh", "prlimit", "bwrap"),
        "unshare": ("sh", "prlimit", "unshare", "mount", "env", "setpriv"),
        "limits": ("sh", "prlimit", "env", *needs_root_tools),
    }
    for level in LEVELS:
        missing = tools.missing(*requirements[level])
        if missing:
            hint = f" {_INSTALL_HINT}" if "bwrap" in missing else ""
            unavailable[level] = f"missing {', '.join(missing)} on {SYSTEM_PATH}.{hint}"
            continue
        attempts = [True, False] if level == "bubblewrap" and tools.has("setpriv") and tools.is_root else [False]
        failure = ""
        for drop_root in attempts:
            trial = _run_at(level, tools, cgroup, "print(6 * 7)", None, {}, SandboxLimits(wall_seconds=30),
                            DEFAULT_INTERPRETER, drop_root=drop_root)
            if trial.ended == "ok" and trial.stdout == "42\n":
                levels.append(level)
                drops_root = drops_root or (level == "bubblewrap" and drop_root)
                break
            failure = (f"a trial run ended {trial.ended!r} (exit {trial.exit_code}): "
                       f"{trial.stderr.strip()[-500:] or '(no stderr)'}")
        else:
            unavailable[level] = failure + (f" {_INSTALL_HINT}" if level == "bubblewrap" else "")
    return IsolationReport(tuple(levels), unavailable, drops_root, cgroup, tools)


def run_program(
    source: str,
    *,
    stdin: str | bytes | None = None,
    files: Mapping[str, str | bytes] | None = None,
    limits: SandboxLimits = DEFAULT_LIMITS,
    level: IsolationLevel | None = None,
    strict: bool = False,
    interpreter: str = DEFAULT_INTERPRETER,
) -> SandboxResult:
    """Run the Python program ``source`` in a fresh sandbox and return what happened.

    Never raises because of what the program does: crashes, limits and floods end up in the
    result. It raises only when asked for something impossible.

    Args:
        source: the program's text, saved as ``main.py`` in an empty private work dir.
        stdin: the program's standard input (empty if ``None``).
        files: extra files for the work dir, relative path -> content.
        limits: resource limits (see :class:`SandboxLimits`).
        level: the isolation level to use; ``None`` takes the strongest that works here.
        strict: refuse any level weaker than bubblewrap; ``RSIM_SANDBOX_STRICT=1`` also turns
            this on.
        interpreter: the Python to run; must be readable by uid 65534 and, for bubblewrap, lie
            under ``/usr``.

    Raises:
        SandboxUnavailableError: ``level`` does not work here, or none does, or strict mode and
            bubblewrap does not work here.
        ConfigError: a bad ``files`` path, an input over the file-size limit, a bad interpreter.
        TypeError: ``source``, ``stdin`` or file contents of the wrong type.
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be a str of Python code, got {type(source).__name__}.")
    if not isinstance(limits, SandboxLimits):
        raise TypeError(f"limits must be a SandboxLimits, got {type(limits).__name__}.")
    stdin_bytes = _as_bytes(stdin, "stdin") if stdin is not None else None
    file_bytes = _validated_files(files or {}, limits)
    if len(source.encode("utf-8")) > limits.file_size_bytes:
        raise ConfigError(f"The program is larger than SandboxLimits.file_size_bytes "
                          f"({limits.file_size_bytes} bytes).")
    report = isolation_report()
    chosen = _choose_level(report, level, strict or strict_from_env())
    if chosen == "bubblewrap" and not os.path.realpath(interpreter).startswith("/usr/"):
        raise ConfigError(f"Interpreter {interpreter!r} is not under /usr, the only system directory "
                          f"bubblewrap shows the program; use {DEFAULT_INTERPRETER}.")
    if not os.access(interpreter, os.X_OK):
        raise ConfigError(f"Interpreter {interpreter!r} does not exist or is not executable.")
    _warn_weak(chosen, report)
    return _run_at(chosen, report.tools, report.cgroup, source, stdin_bytes, file_bytes, limits,
                   interpreter, drop_root=report.bwrap_drops_root)


def _choose_level(report: IsolationReport, level: IsolationLevel | None, strict: bool) -> IsolationLevel:
    if level is not None and level not in LEVELS:
        raise ConfigError(f"Unknown isolation level {level!r}; use one of {', '.join(LEVELS)}.")
    chosen = level or report.best
    if strict and chosen != "bubblewrap":
        why = report.unavailable.get("bubblewrap", "it was not requested")
        raise SandboxUnavailableError(
            f"Strict sandbox mode ({STRICT_ENV_VAR}=1 or strict=True) refuses isolation level "
            f"{chosen!r}: only bubblewrap is allowed. Bubblewrap here: "
            f"{'available' if 'bubblewrap' in report.levels else why}")
    if chosen is None:
        reasons = "; ".join(f"{lvl}: {why}" for lvl, why in report.unavailable.items())
        raise SandboxUnavailableError(f"No sandbox isolation level works on this machine ({reasons}).")
    if chosen not in report.levels:
        raise SandboxUnavailableError(f"Isolation level {chosen!r} does not work on this machine: "
                                      f"{report.unavailable[chosen]}")
    return chosen


def _warn_weak(level: IsolationLevel, report: IsolationReport) -> None:
    if level == "bubblewrap":
        return
    with _warned_lock:
        if level in _warned:
            return
        _warned.add(level)
    logger.warning(
        "SANDBOX IS WEAKER THAN BUBBLEWRAP: running untrusted programs at isolation level %r "
        "(bubblewrap: %s). Every result records its level; set %s=1 to refuse weak levels.",
        level, report.unavailable.get("bubblewrap", "available but not chosen"), STRICT_ENV_VAR)


def _as_bytes(value: str | bytes, what: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise TypeError(f"{what} must be str or bytes, got {type(value).__name__}.")


def _validated_files(files: Mapping[str, str | bytes], limits: SandboxLimits) -> dict[str, bytes]:
    checked = {}
    for name, content in files.items():
        path = PurePosixPath(name) if isinstance(name, str) else None
        if (path is None or not name or "\0" in name or path.is_absolute()
                or any(part in ("", ".", "..") for part in name.split("/"))):
            raise ConfigError(f"files key {name!r} must be a relative path without '.', '..' or "
                              "empty parts (e.g. 'data/input.txt').")
        if name == commands.PROGRAM_NAME:
            raise ConfigError(f"files may not contain {commands.PROGRAM_NAME!r}: that is the program.")
        data = _as_bytes(content, f"files[{name!r}]")
        if len(data) > limits.file_size_bytes:
            raise ConfigError(f"files[{name!r}] is larger than SandboxLimits.file_size_bytes "
                              f"({limits.file_size_bytes} bytes).")
        checked[name] = data
    return checked


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, 0)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        raise
    return fd


def _process_count(uid: int) -> int:
    """How many processes ``uid`` has now (``RLIMIT_NPROC`` counts them all)."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_uid == uid:
                    count += 1
    return count


def _make_work_dir(stack: contextlib.ExitStack, tools: HostTools, source: str,
                   files: Mapping[str, bytes]) -> str:
    """A private host dir: ``<tmp>/rsim-sandbox-xxx`` (0711, root) / ``work`` (0700, uid 65534)."""
    top = tempfile.mkdtemp(prefix="rsim-sandbox-")
    stack.callback(_remove_tree, top)
    os.chmod(top, 0o711)  # traversable, not listable, by uid 65534
    work = os.path.join(top, "work")
    os.mkdir(work, 0o700)
    for name, data in {commands.PROGRAM_NAME: source.encode("utf-8"), **files}.items():
        target = Path(work, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    if tools.is_root:
        for dirpath, dirnames, filenames in os.walk(work):
            for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
                os.chown(name, NOBODY, NOBODY)
    return work


def _remove_tree(path: str) -> None:
    """Remove ``path`` even where the program made directories in it unwritable or unlistable."""
    for dirpath, dirnames, _ in os.walk(path):  # top-down: a dir is opened up before it is entered
        for name in dirnames:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(dirpath, name), stat.S_IRWXU, follow_symlinks=False)
    shutil.rmtree(path, ignore_errors=True)
    if os.path.exists(path):
        logger.warning("Could not remove sandbox directory %s.", path)


def _run_at(level: IsolationLevel, tools: HostTools, cgroup_root: CgroupRoot | None, source: str,
            stdin: bytes | None, files: Mapping[str, bytes], limits: SandboxLimits, interpreter: str,
            *, drop_root: bool) -> SandboxResult:
    notes: list[str] = []
    if level == "unshare":
        runs_as = "uid 65534" if tools.is_root else "the caller's uid, without capabilities"
        notes.append(f"unshare level: host file system visible (read as {runs_as}), host work dir")
    elif level == "limits":
        notes.append("limits level: no file-system, network or pid isolation")
    if level == "bubblewrap" and tools.is_root and not drop_root:
        notes.append("bubblewrap runs as root outside its user namespace (setpriv drop failed)")
    if level == "bubblewrap" and "--size" not in tools.bwrap_flags:
        notes.append("bubblewrap too old for --size: tmpfs sizes unbounded")
    with contextlib.ExitStack() as stack:
        cgroup = None
        if cgroup_root is not None:
            try:
                cgroup = PidsCgroup(cgroup_root, limits.processes + SANDBOX_PROCESSES)
                stack.callback(cgroup.remove)
            except OSError as exc:
                notes.append(f"could not create a pids cgroup ({exc})")
        nproc = None
        if cgroup is None:
            runs_as = NOBODY if tools.is_root and (level != "bubblewrap" or drop_root) else os.getuid()
            if runs_as == 0:
                notes.append("no pids cgroup and the program's processes count as root: "
                             "the process limit is NOT enforced")
            else:
                # RLIMIT_NPROC counts every process of the uid, so allow what it has now on top.
                nproc = _process_count(runs_as) + limits.processes + SANDBOX_PROCESSES
                notes.append(f"no pids cgroup: process limit is RLIMIT_NPROC for uid {runs_as}, "
                             "shared with that uid's other processes")
        stdin_fd: int = subprocess.DEVNULL
        if stdin is not None:
            stdin_fd = _memfd("rsim-stdin", stdin)
            stack.callback(os.close, stdin_fd)
        procs_file = cgroup.procs_file if cgroup else None
        file_fds: list[tuple[int, str]] = []
        work = ""
        if level == "bubblewrap":
            for name, data in {commands.PROGRAM_NAME: source.encode("utf-8"), **files}.items():
                fd = _memfd("rsim-file", data)
                stack.callback(os.close, fd)
                file_fds.append((fd, name))
        else:
            work = _make_work_dir(stack, tools, source, files)
        # bubblewrap reports on a pipe that it closes for the program; the other levels write a file.
        status_r, status_w = os.pipe()
        stack.callback(os.close, status_r)
        try:
            if level == "bubblewrap":
                dirs = sorted({str(p) for name in files for p in PurePosixPath(name).parents
                               if str(p) != "."}, key=lambda d: d.count("/"))
                launch = commands.bubblewrap(tools, limits, interpreter=interpreter,
                                             procs_file=procs_file, status_fd=status_w,
                                             file_fds=file_fds, dirs=dirs, drop_root=drop_root,
                                             nproc=nproc)
            else:
                build = commands.unshare if level == "unshare" else commands.limits_only
                launch = build(tools, limits, interpreter=interpreter, procs_file=procs_file,
                               work_dir=work, nproc=nproc)
            started_at = time.monotonic()
            proc = subprocess.Popen(launch.argv, stdin=stdin_fd, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE,
                                    pass_fds=[status_w, *(fd for fd, _ in file_fds)] if not work else [],
                                    cwd=launch.cwd, env={"PATH": SYSTEM_PATH}, start_new_session=True)
        except OSError as exc:
            return _result("sandbox_error", None, None, _Collected(stderr=bytearray(
                f"could not start the sandbox: {exc}".encode())), limits, level, notes, False)
        finally:
            os.close(status_w)
        try:
            collected = _collect(proc, limits, cgroup, started_at)
        except BaseException:  # e.g. KeyboardInterrupt: never leave a program running unwatched
            _kill_all(proc, cgroup)
            proc.wait()
            raise
        started = _reached_program(launch, status_r)
        limit_hit = cgroup.limit_hit() if cgroup else False
    exit_code = collected.returncode
    sig = None
    if exit_code < 0:
        sig, exit_code = -exit_code, 128 - exit_code
    elif level != "limits" and 128 < exit_code < 128 + signal.NSIG:  # namespaces report 128 + N
        sig = exit_code - 128
    ended = _classify(started, collected, exit_code, sig, limits)
    return _result(ended, exit_code if started else None, sig if started else None, collected,
                   limits, level, notes, limit_hit)


def _reached_program(launch: commands.Launch, status_r: int) -> bool:
    if launch.status_file is None:
        return commands.BWRAP_STARTED in _read_available(status_r)
    try:
        return Path(launch.status_file).read_bytes().strip() == commands.STARTED
    except OSError:
        return False


def _read_available(fd: int) -> bytes:
    os.set_blocking(fd, False)
    data = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 65536):
            data += chunk
    return data


def _kill_all(proc: subprocess.Popen[bytes], cgroup: PidsCgroup | None) -> None:
    """SIGKILL the run's process group and, when there is one, everything in its cgroup.

    Called before the main process is reaped, so its pid (the group id) cannot have been reused.
    Under bubblewrap and unshare the program's own session lies inside a pid namespace whose
    reaper dies with the group, and the kernel then kills everything left in the namespace.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if cgroup is not None:
        cgroup.kill()


def _collect(proc: subprocess.Popen[bytes], limits: SandboxLimits, cgroup: PidsCgroup | None,
             started_at: float) -> _Collected:
    """Read both pipes up to the cap until exit (or the wall-clock kill), then reap with rusage."""
    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    collected = _Collected()
    deadline = started_at + limits.wall_seconds
    drain_until: float | None = None
    reaped = False
    pidfd = os.pidfd_open(proc.pid)
    with selectors.DefaultSelector() as selector:
        for fd in (out_fd, err_fd):
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        selector.register(pidfd, selectors.EVENT_READ)
        while selector.get_map():
            now = time.monotonic()
            if not reaped and not collected.timed_out and now >= deadline:
                _kill_all(proc, cgroup)
                collected.timed_out = True
                drain_until = now + _DRAIN_GRACE_S
            if drain_until is not None and now >= drain_until:
                break
            for key, _ in selector.select(max(0.0, (drain_until or deadline) - now)):
                if key.fd == pidfd:
                    selector.unregister(pidfd)
                    collected.duration_s = time.monotonic() - started_at
                    _kill_all(proc, cgroup)  # leftovers: daemons, background children
                    _reap(proc, collected)
                    reaped = True
                    drain_until = drain_until or time.monotonic() + _DRAIN_GRACE_S
                    continue
                try:
                    chunk = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                _keep(collected, key.fd == out_fd, chunk, limits.output_bytes)
    os.close(pidfd)
    if not reaped:
        _kill_all(proc, cgroup)
        collected.duration_s = time.monotonic() - started_at
        _reap(proc, collected)
    proc.stdout.close()
    proc.stderr.close()
    return collected


def _keep(collected: _Collected, is_stdout: bool, chunk: bytes, cap: int) -> None:
    buffer = collected.stdout if is_stdout else collected.stderr
    room = cap - len(buffer)
    if room > 0:
        buffer += chunk[:room]
    if is_stdout:
        collected.stdout_total += len(chunk)
    else:
        collected.stderr_total += len(chunk)
        collected.stderr_tail = (collected.stderr_tail + chunk)[-_TAIL_BYTES:]


def _reap(proc: subprocess.Popen[bytes], collected: _Collected) -> None:
    collected.returncode = proc.wait()


_MEMORY_ERROR = re.compile(rb"^MemoryError\b", re.MULTILINE)
_FILE_TOO_LARGE = re.compile(rb"\[Errno 27\] File too large")


def _classify(started: bool, collected: _Collected, exit_code: int, sig: int | None,
              limits: SandboxLimits) -> Ended:
    if not started:
        return "sandbox_error"
    if collected.timed_out:
        return "timeout"
    if exit_code == 0:
        return "ok"
    if sig == signal.SIGXCPU:
        return "cpu"
    if sig == signal.SIGXFSZ or _FILE_TOO_LARGE.search(collected.stderr_tail):
        return "filesize"  # Python ignores SIGXFSZ, so a write fails with EFBIG instead
    if _MEMORY_ERROR.search(collected.stderr_tail):
        return "memory"
    if sig == signal.SIGKILL and collected.duration_s >= limits.cpu_seconds:
        # The hard RLIMIT_CPU (soft + 1 s) when SIGXCPU was caught or ignored. CPU time itself is
        # not measurable here: under bubblewrap the program is reaped inside its pid namespace, so
        # its rusage never reaches us; a SIGKILL we did not send, after at least the CPU limit
        # in wall time, is taken as the CPU limit.
        return "cpu"
    return "killed" if sig is not None else "error"


def _result(ended: Ended, exit_code: int | None, sig: int | None, collected: _Collected,
            limits: SandboxLimits, level: IsolationLevel, notes: list[str],
            limit_hit: bool) -> SandboxResult:
    return SandboxResult(
        ended=ended, exit_code=exit_code, signal=sig,
        stdout=collected.stdout.decode("utf-8", errors="replace"),
        stderr=collected.stderr.decode("utf-8", errors="replace"),
        stdout_truncated=collected.stdout_total > limits.output_bytes,
        stderr_truncated=collected.stderr_total > limits.output_bytes,
        duration_s=collected.duration_s, level=level, notes=tuple(notes),
        process_limit_hit=limit_hit)
