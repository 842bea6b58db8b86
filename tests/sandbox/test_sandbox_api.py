"""The sandbox's interface: results, inputs, strict mode, the weaker levels, the pool, cleanup."""

from __future__ import annotations

import glob
import logging
import os
import tempfile
import time
import uuid

import pytest

from rsim_env.errors import ConfigError
from rsim_env.sandbox import (
    STRICT_ENV_VAR,
    SandboxLimits,
    SandboxPool,
    SandboxUnavailableError,
    isolation_report,
    run_many,
    run_program,
)
from rsim_env.sandbox.cgroups import pids_cgroup_root

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(120)]


def test_stdin_files_and_exit_status_reach_the_program(bwrap_run):
    result = bwrap_run(
        "import sys\n"
        "data = open('data/nested/input.txt').read()\n"
        "print(sys.stdin.read().upper(), data, open('blob.bin', 'rb').read())\n"
        "sys.exit(3)\n",
        stdin="hello", files={"data/nested/input.txt": "from a file", "blob.bin": b"\x00\x01"})
    assert result.ended == "error"
    assert result.exit_code == 3 and result.signal is None
    assert result.stdout == "HELLO from a file b'\\x00\\x01'\n"
    assert result.notes == ()  # full isolation here: nothing weaker to record


def test_syntax_error_and_exception_are_errors_with_tracebacks(bwrap_run):
    syntax = bwrap_run("def f(:\n    pass")
    raised = bwrap_run("raise ValueError('bad value')")
    assert syntax.ended == raised.ended == "error"
    assert "SyntaxError" in syntax.stderr
    assert "ValueError: bad value" in raised.stderr


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(TypeError, match="source must be a str"):
        run_program(b"print(1)")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="relative path"):
        run_program("pass", files={"../escape.txt": "x"})
    with pytest.raises(ConfigError, match="relative path"):
        run_program("pass", files={"/etc/passwd": "x"})
    with pytest.raises(ConfigError, match="Unknown isolation level"):
        run_program("pass", level="docker")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="positive"):
        SandboxLimits(cpu_seconds=0)
    with pytest.raises(ConfigError, match="file_size_bytes"):
        run_program("pass", files={"big": b"x" * 2048}, limits=SandboxLimits(file_size_bytes=1024))


def test_strict_mode_refuses_weaker_levels(monkeypatch):
    with pytest.raises(SandboxUnavailableError, match="only bubblewrap is allowed"):
        run_program("print(1)", level="limits", strict=True)
    monkeypatch.setenv(STRICT_ENV_VAR, "1")
    with pytest.raises(SandboxUnavailableError, match=STRICT_ENV_VAR):
        run_program("print(1)", level="unshare")


@pytest.mark.parametrize("level", ["unshare", "limits"])
def test_weaker_levels_still_enforce_limits_and_record_themselves(level, monkeypatch, caplog):
    monkeypatch.delenv(STRICT_ENV_VAR, raising=False)
    if level not in isolation_report().levels:
        pytest.skip(f"{level} does not work here: {isolation_report().unavailable[level]}")
    limits = SandboxLimits(cpu_seconds=1, wall_seconds=10, memory_bytes=512 << 20)
    with caplog.at_level(logging.WARNING, logger="rsim_env.sandbox"):
        results = {
            "uid": run_program("import os; print(os.getuid() if os.geteuid() else 'root')", level=level),
            "memory": run_program("x = bytearray(4 << 30)", level=level, limits=limits),
            "cpu": run_program("while True:\n    pass", level=level, limits=limits),
        }
    for result in results.values():
        assert result.level == level
        assert any(level in note for note in result.notes), result.notes
    assert results["uid"].ended == "ok" and results["uid"].stdout.strip() != "root"
    assert results["memory"].ended == "memory"
    assert results["cpu"].ended == "cpu"


def test_unshare_level_isolates_network_and_tmp(monkeypatch):
    monkeypatch.delenv(STRICT_ENV_VAR, raising=False)
    if "unshare" not in isolation_report().levels:
        pytest.skip(f"unshare does not work here: {isolation_report().unavailable['unshare']}")
    target = f"/tmp/rsim-attack-{uuid.uuid4().hex}"
    result = run_program(
        "import socket\n"
        f"open({target!r}, 'w').write('x')\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', 22), timeout=2)\n"
        "except OSError as exc:\n"
        "    print('BLOCKED', exc.errno)\n"
        "try:\n"
        "    open('/etc/shadow').read()\n"
        "except OSError:\n"
        "    print('DENIED')\n",
        level="unshare")
    assert result.ended == "ok", result.stderr
    assert "BLOCKED" in result.stdout and "DENIED" in result.stdout
    assert not os.path.exists(target)


def test_every_temporary_directory_and_cgroup_is_removed(monkeypatch):
    monkeypatch.delenv(STRICT_ENV_VAR, raising=False)
    pattern = os.path.join(tempfile.gettempdir(), "rsim-sandbox-*")
    cgroup_root = pids_cgroup_root()

    def leftovers() -> set[str]:
        dirs = set(glob.glob(pattern))
        if cgroup_root is not None:
            dirs |= {str(p) for p in cgroup_root.path.glob(f"rsim-sandbox-{os.getpid()}-*")}
        return dirs

    before = leftovers()
    limits = SandboxLimits(wall_seconds=1)
    for level in isolation_report().levels:
        run_program("open('junk', 'w').write('x' * 1000)", level=level)
        run_program("import os; os.makedirs('a/b'); os.chmod('a', 0o500)", level=level)
        run_program("import time; time.sleep(100)", level=level, limits=limits)
    assert leftovers() == before


def test_pool_runs_in_parallel_and_keeps_order(bwrap_run):
    sources = [f"import time; time.sleep(0.5); print({i})" for i in range(4)]
    with SandboxPool(workers=4, level="bubblewrap", strict=True) as pool:
        started = time.monotonic()
        results = pool.map(sources)
        elapsed = time.monotonic() - started
        override = pool.submit("import time; time.sleep(5)", limits=SandboxLimits(wall_seconds=0.5))
        timed_out = override.result()
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(4)]
    assert all(r.level == "bubblewrap" for r in results)
    assert elapsed < 1.6  # run one after another they would take at least 2 s
    assert timed_out.ended == "timeout"  # per-call arguments override the pool's
    assert [r.stdout for r in run_many(["print('a')", "print('b')"], workers=2)] == ["a\n", "b\n"]
