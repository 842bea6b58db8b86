"""Call a function in a persistent child process, with a wall-clock timeout per call.

Why a child process: some checks (symbolic math with sympy, via ``math-verify``) can run for
minutes or eat gigabytes on adversarial input such as ``9^{9^{9^9}}``. Python cannot interrupt that
work from another thread, so it runs in a separate process that the caller can kill. Starting a
process per call would cost about a second (importing sympy), so one worker stays alive and is
reused; only a timeout or a crash replaces it.

Design choices, each for a reason:

- The child is a fresh ``python`` started with :mod:`subprocess`, not :mod:`multiprocessing`: the
  *spawn* start method re-imports the user's ``__main__`` (so a script without an
  ``if __name__ == "__main__"`` guard breaks) and *fork* is unsafe once threads exist (torch,
  tokenizers). A plain subprocess has neither problem.
- The child imports ``rsim_env``'s modules without running ``rsim_env/__init__.py`` (which loads
  the env, PettingZoo and registers every suite): it only needs the target's module, so it starts
  in the time that module takes to import. Targets must therefore not rely on package-level
  side effects such as suite registration.
- Requests and replies are length-prefixed pickles over the child's stdin/stdout; the parent waits
  with ``select`` and a deadline, so a silent child can never block the caller past the timeout.
  The child moves anything the called function prints to stdout over to stderr, so stray output
  cannot corrupt the protocol.
- On timeout the whole child process group is killed with ``SIGKILL`` and the next call starts a
  fresh worker (lazily). The child runs in its own session, so a terminal's Ctrl-C does not kill it
  behind the caller's back, and it exits by itself when the parent dies (stdin reaches EOF).
- An optional address-space limit (``RLIMIT_AS``) turns a memory bomb into a ``MemoryError`` in the
  child rather than an out-of-memory kill of the machine.
- A worker belongs to the process that started it: after ``os.fork()`` the child process starts its
  own worker instead of sharing (and corrupting) the parent's pipes. Live workers are closed at exit.

POSIX only (``select`` on pipes, process groups, ``resource``), like the sandbox.
"""

from __future__ import annotations

import atexit
import importlib
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Sequence

from rsim_env.errors import RSIMError

__all__ = ["WorkerProcess", "WorkerTimeoutError", "WorkerCrashedError"]

# The child's entry point: a bare ``rsim_env`` package object stands in for the real one, so that
# importing ``rsim_env.checkers.worker`` and the target does not execute ``rsim_env/__init__.py``.
_BOOTSTRAP = """
import sys, types
root, target, limit, *preload = sys.argv[1:]
sys.path.insert(0, root)
package = types.ModuleType("rsim_env")
package.__path__ = [root + "/rsim_env"]
sys.modules["rsim_env"] = package
from rsim_env.checkers.worker import _serve
_serve(target, int(limit), preload)
"""
_HEADER = struct.Struct("!Q")  # payload length of one message, network byte order
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_STDERR_TAIL_CHARS = 2000


class WorkerTimeoutError(RSIMError, TimeoutError):
    """A call (or the worker's start-up) took longer than its timeout; the worker was killed."""


class WorkerCrashedError(RSIMError, RuntimeError):
    """The worker died, failed to start, or the called function raised; the message says which."""


_LIVE_WORKERS: "weakref.WeakSet[WorkerProcess]" = weakref.WeakSet()


@atexit.register
def _close_live_workers() -> None:
    for worker in list(_LIVE_WORKERS):
        worker.close()


def _fresh_locks_after_fork() -> None:
    """A lock held by another thread at fork time would stay locked forever in the child."""
    for worker in list(_LIVE_WORKERS):
        worker._lock = threading.Lock()


os.register_at_fork(after_in_child=_fresh_locks_after_fork)


class WorkerProcess:
    """A restartable child process that runs ``target(*args)`` for the caller.

    Args:
        target: ``"package.module:function"``; imported in the child, so it must be importable by
            name (a module-level function) and its arguments and result must pickle.
        preload: modules the child imports while starting, so that their import time counts
            against ``startup_timeout`` rather than against the first call's timeout.
        startup_timeout: seconds the child may take to start and import ``target`` and ``preload``.
        memory_limit_mb: address-space limit of the child (``None``: no limit).

    The worker starts on the first :meth:`call` (or :meth:`start`). It is thread-safe: concurrent
    calls are served one at a time.
    """

    def __init__(
        self,
        target: str,
        *,
        preload: Sequence[str] = (),
        startup_timeout: float = 30.0,
        memory_limit_mb: int | None = 2048,
    ) -> None:
        if ":" not in target:
            raise ValueError(f"target must look like 'package.module:function', got {target!r}.")
        self.target = target
        self.preload = tuple(preload)
        self.startup_timeout = startup_timeout
        self.memory_limit_mb = memory_limit_mb
        self.starts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None
        self._owner_pid = os.getpid()
        self._lock = threading.Lock()
        _LIVE_WORKERS.add(self)

    @property
    def alive(self) -> bool:
        """Whether this process currently holds a running worker."""
        return self._proc is not None and self._owner_pid == os.getpid() and self._proc.poll() is None

    def start(self) -> None:
        """Start the worker now if it is not running (e.g. before timing something)."""
        with self._lock:
            self._ensure_started()

    def call(self, *args: Any, timeout: float) -> Any:
        """Run ``target(*args)`` in the worker and return its result.

        Raises:
            WorkerTimeoutError: no result within ``timeout`` seconds (or no start-up within
                ``startup_timeout``); the worker has been killed and restarts on the next call.
            WorkerCrashedError: the worker died or could not start, or ``target`` raised.
        """
        with self._lock:
            self._ensure_started()
            proc = self._proc
            assert proc is not None and proc.stdin is not None and proc.stdout is not None
            try:
                _write_message(proc.stdin, pickle.dumps(args, protocol=pickle.HIGHEST_PROTOCOL))
                status, value = pickle.loads(_read_message(proc.stdout, time.monotonic() + timeout))
            except TimeoutError:
                self._kill()
                raise WorkerTimeoutError(
                    f"{self.target} did not finish within {timeout:g}s; the worker was killed "
                    "and will restart on the next call.") from None
            except (OSError, EOFError, pickle.UnpicklingError) as exc:
                detail = self._stderr_tail()
                self._kill()
                raise WorkerCrashedError(
                    f"The worker running {self.target} died ({exc or type(exc).__name__})"
                    + (f"; its last output: {detail}" if detail else ".")) from None
            if status == "error":
                raise WorkerCrashedError(f"{self.target} raised {value}")
            return value

    def close(self) -> None:
        """Stop the worker (if this process owns one); a later call starts a new one."""
        if self._owner_pid != os.getpid():
            self._proc = None
            return
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()  # the child exits on EOF
            proc.wait(timeout=1.0)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self._kill()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: modules may already be gone
            pass

    def _ensure_started(self) -> None:
        if self._owner_pid != os.getpid():  # we were forked: the pipes belong to the parent
            self._proc, self._stderr, self._owner_pid = None, None, os.getpid()
        if self._proc is not None and self._proc.poll() is None:
            return
        self._kill()
        self._stderr = tempfile.TemporaryFile()
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])  # the folder holding rsim_env/
        env.setdefault("OMP_NUM_THREADS", "1")
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        limit = str(self.memory_limit_mb or 0)
        cmd = [sys.executable, "-c", _BOOTSTRAP, package_root, self.target, limit, *self.preload]
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            env=env, start_new_session=True, close_fds=True)
        self.starts += 1
        try:
            status, value = pickle.loads(
                _read_message(self._proc.stdout, time.monotonic() + self.startup_timeout))
        except TimeoutError:
            self._kill()
            raise WorkerTimeoutError(
                f"The worker for {self.target} did not start within {self.startup_timeout:g}s.") from None
        except (OSError, EOFError, pickle.UnpicklingError):
            detail = self._stderr_tail()
            self._kill()
            raise WorkerCrashedError(
                f"The worker for {self.target} failed to start"
                + (f": {detail}" if detail else ".")) from None
        if status != "ready":
            self._kill()
            raise WorkerCrashedError(f"The worker for {self.target} failed to start: {value}")

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and self._owner_pid == os.getpid():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    proc.kill()
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                pass
            for stream in (proc.stdin, proc.stdout):
                try:
                    if stream is not None:
                        stream.close()
                except OSError:
                    pass
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0)
            text = self._stderr.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        return text.strip()[-_STDERR_TAIL_CHARS:]


def _write_message(stream: Any, payload: bytes) -> None:
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    while n:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError("end of stream")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_message(stream: Any, deadline: float | None) -> bytes:
    """One length-prefixed message; reads the raw fd so ``select`` sees all buffered data."""
    fd = stream.fileno()
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline))
    if size > _MAX_MESSAGE_BYTES:
        raise OSError(f"message of {size} bytes exceeds the {_MAX_MESSAGE_BYTES}-byte limit")
    return _read_exact(fd, size, deadline)


def _serve(target: str, memory_limit_mb: int, preload: Sequence[str]) -> None:
    """The child's loop: answer each request with ``("ok", result)`` or ``("error", text)``."""
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever the target prints goes to stderr, never into the protocol
    protocol_in = os.fdopen(os.dup(0), "rb", buffering=0)
    try:
        if memory_limit_mb > 0:
            import resource

            limit = memory_limit_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        for name in preload:
            importlib.import_module(name)
        module_name, _, function_name = target.partition(":")
        function: Callable[..., Any] = getattr(importlib.import_module(module_name), function_name)
    except BaseException as exc:  # report any start-up failure, then exit
        _write_message(protocol_out, pickle.dumps(("failed", f"{type(exc).__name__}: {exc}")))
        return
    _write_message(protocol_out, pickle.dumps(("ready", None)))
    while True:
        try:
            args = pickle.loads(_read_message(protocol_in, None))
        except (EOFError, OSError):
            return  # the parent closed the pipe or died
        try:
            reply = pickle.dumps(("ok", function(*args)), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:  # includes MemoryError and RecursionError from the target
            reply = pickle.dumps(("error", f"{type(exc).__name__}: {str(exc)[:500]}"))
        _write_message(protocol_out, reply)
