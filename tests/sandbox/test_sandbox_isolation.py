"""Every attack from issue 3, run for real at the bubblewrap level, with a check on the host after.

Each test would fail if the isolation it covers broke: the attack is real (a real TCP server, real
host paths, a real victim process, real allocations and floods), and the assertion is about the
host's state or the sandbox's record, not about what the program claims.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from rsim_env.sandbox import SandboxLimits
from rsim_env.sandbox.cgroups import pids_cgroup_root

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]


def host_processes_with(token: str) -> list[int]:
    """PIDs of host processes whose command line contains ``token``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if token.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_tcp_connection_to_host_server_fails(bwrap_run):
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted = []

    def accept_all(stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                pass

    stop = threading.Event()
    thread = threading.Thread(target=accept_all, args=(stop,), daemon=True)
    thread.start()
    try:
        result = bwrap_run(
            "import socket\n"
            f"for host in ('127.0.0.1', 'localhost', '10.0.2.2'):\n"
            "    try:\n"
            f"        socket.create_connection((host, {port}), timeout=2)\n"
            "        print('CONNECTED', host)\n"
            "    except OSError as exc:\n"
            "        print('BLOCKED', host, exc.errno)\n")
        time.sleep(0.3)
        sandbox_connections = len(accepted)
        socket.create_connection(("127.0.0.1", port), timeout=2).close()  # control: server works
        deadline = time.monotonic() + 3
        while len(accepted) == sandbox_connections and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
        server.close()
    assert result.ended == "ok", result.stderr
    assert "CONNECTED" not in result.stdout
    assert result.stdout.count("BLOCKED") == 3
    assert sandbox_connections == 0
    assert len(accepted) == 1, "the control connection from the host should have been accepted"


def test_writes_to_host_tmp_repo_and_root_leave_nothing(bwrap_run):
    token = uuid.uuid4().hex
    targets = [f"/tmp/rsim-attack-{token}", str(REPO / f"rsim-attack-{token}"),
               f"/root/rsim-attack-{token}", f"/var/tmp/rsim-attack-{token}"]
    result = bwrap_run(
        "import os\n"
        f"for path in {targets!r}:\n"
        "    try:\n"
        "        os.makedirs(os.path.dirname(path), exist_ok=True)\n"
        "        with open(path, 'w') as f:\n"
        "            f.write('pwned')\n"
        "        print('WROTE', path)\n"
        "    except OSError as exc:\n"
        "        print('FAILED', path, exc)\n")
    assert result.ended == "ok", result.stderr
    assert result.stdout.count("\n") == len(targets)  # every attempt ran
    for target in targets:
        assert not os.path.exists(target), f"the sandbox left {target} on the host"


def test_host_files_are_unreadable_or_absent(bwrap_run, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text(f"host-secret-{uuid.uuid4().hex}")
    targets = ["/root", str(REPO / "pyproject.toml"), str(REPO), "/etc/shadow", "/etc/passwd",
               str(secret), "/proc/1/environ"]
    result = bwrap_run(
        "import os\n"
        f"for path in {targets!r}:\n"
        "    try:\n"
        "        data = os.listdir(path) if os.path.isdir(path) else open(path, 'rb').read()\n"
        "        print('READ', path, repr(data)[:200])\n"
        "    except OSError as exc:\n"
        "        print('DENIED', path, type(exc).__name__)\n")
    assert result.ended == "ok", result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(targets)
    readable = [line for line in lines if line.startswith("READ")]
    # /proc/1 is the sandbox's own reaper (its environment is empty); nothing else may be read.
    assert all("/proc/1/environ" in line for line in readable), readable
    assert secret.read_text() not in result.stdout
    assert "build-system" not in result.stdout


def test_caller_environment_does_not_leak(bwrap_run, monkeypatch):
    token = f"tok-{uuid.uuid4().hex}"
    monkeypatch.setenv("RSIM_TEST_SECRET", token)
    result = bwrap_run("import os; print(sorted(os.environ.items()))")
    assert result.ended == "ok", result.stderr
    assert token not in result.stdout
    assert "RSIM_TEST_SECRET" not in result.stdout


def test_program_runs_as_nobody_without_capabilities(bwrap_run):
    result = bwrap_run(
        "import os\n"
        "print(os.getuid(), os.getgid(), os.getgroups())\n"
        "status = dict(l.split(':', 1) for l in open('/proc/self/status'))\n"
        "print(status['CapEff'].strip(), status['CapPrm'].strip(), status['NoNewPrivs'].strip())\n")
    assert result.ended == "ok", result.stderr
    ids, caps = result.stdout.splitlines()
    assert ids.startswith("65534 65534")
    assert caps == "0000000000000000 0000000000000000 1"


def test_host_processes_cannot_be_signalled(bwrap_run):
    victim = subprocess.Popen(["sleep", "60"])
    try:
        result = bwrap_run(
            "import os, signal\n"
            f"for pid, sig in (({victim.pid}, signal.SIGKILL), ({os.getpid()}, signal.SIGTERM), "
            f"({os.getppid()}, signal.SIGTERM)):\n"
            "    try:\n"
            "        os.kill(pid, sig)\n"
            "        print('SIGNALLED', pid)\n"
            "    except OSError as exc:\n"
            "        print('REFUSED', pid, type(exc).__name__)\n"
            "os.kill(-1, signal.SIGKILL)  # everything this process may signal\n")
        time.sleep(0.2)
        assert victim.poll() is None, "the sandbox killed a host process"
    finally:
        victim.kill()
        victim.wait()
    assert "SIGNALLED" not in result.stdout
    assert result.stdout.count("REFUSED") == 3


def test_four_gib_allocation_fails(bwrap_run):
    result = bwrap_run("x = bytearray(4 << 30)\nprint('ALLOCATED')",
                       limits=SandboxLimits(memory_bytes=512 << 20))
    assert result.ended == "memory"
    assert "ALLOCATED" not in result.stdout
    assert "MemoryError" in result.stderr


def test_busy_loop_dies_at_cpu_limit(bwrap_run):
    result = bwrap_run("while True:\n    pass", limits=SandboxLimits(cpu_seconds=1, wall_seconds=20))
    assert result.ended == "cpu"
    assert result.signal == signal.SIGXCPU
    assert 0.9 < result.duration_s < 5


def test_cpu_limit_holds_when_sigxcpu_is_ignored(bwrap_run):
    result = bwrap_run("import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass",
                       limits=SandboxLimits(cpu_seconds=1, wall_seconds=20))
    assert result.ended == "cpu"
    assert result.signal == signal.SIGKILL
    assert result.duration_s < 5


def test_sleep_dies_at_wall_limit_with_its_children(bwrap_run):
    token = uuid.uuid4().hex[:12]
    result = bwrap_run(
        "import subprocess, time\n"
        f"subprocess.Popen(['sleep', '1000.{token}'])\n"
        "time.sleep(1000)\n",
        limits=SandboxLimits(wall_seconds=1.5))
    assert result.ended == "timeout"
    assert 1.4 < result.duration_s < 4
    assert host_processes_with(f"1000.{token}") == []


def test_fork_bomb_is_stopped_and_host_can_still_start_processes(bwrap_run):
    token = uuid.uuid4().hex[:12]
    before = _own_cgroups()
    result = bwrap_run(
        "import os, time\n"
        "while True:\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        time.sleep(0.01)\n"
        "        continue\n"
        "    if pid == 0 and os.getpid() % 3 == 0:\n"
        f"        os.execv('/usr/bin/sleep', ['sleep', '1000.{token}'])\n",
        limits=SandboxLimits(processes=16, wall_seconds=2))
    assert result.ended == "timeout"
    assert result.duration_s < 5
    assert host_processes_with(f"1000.{token}") == []
    assert subprocess.run(["true"], timeout=10).returncode == 0
    if pids_cgroup_root() is not None:
        assert result.process_limit_hit, "the pids cgroup should have refused forks"
        assert _own_cgroups() == before, "the run's cgroup was not removed"
    else:
        assert any("RLIMIT_NPROC" in note for note in result.notes)


def test_one_gigabyte_file_write_is_stopped(bwrap_run):
    limits = SandboxLimits(file_size_bytes=8 << 20)
    result = bwrap_run(
        "written = 0\n"
        "try:\n"
        "    with open('big.bin', 'wb') as f:\n"
        "        for _ in range(1024):\n"
        "            f.write(b'x' * (1 << 20))\n"
        "            written += 1 << 20\n"
        "finally:\n"
        "    print(written, flush=True)\n",
        limits=limits)
    assert result.ended == "filesize"
    assert int(result.stdout.strip()) <= limits.file_size_bytes


def test_hundred_megabyte_stdout_flood_is_capped(bwrap_run):
    limits = SandboxLimits(output_bytes=64 << 10)
    result = bwrap_run(
        "import sys\n"
        "for _ in range(100):\n"
        "    sys.stdout.buffer.write(b'y' * (1 << 20))\n"
        "    sys.stderr.buffer.write(b'z' * (1 << 16))\n",
        limits=limits)
    assert result.ended == "ok"
    assert result.stdout_truncated and result.stderr_truncated
    assert len(result.stdout) == limits.output_bytes == len(result.stderr)
    assert set(result.stdout) == {"y"}
    assert result.duration_s < 15


def _own_cgroups() -> set[str]:
    root = pids_cgroup_root()
    if root is None:
        return set()
    return {p.name for p in root.path.iterdir() if p.name.startswith(f"rsim-sandbox-{os.getpid()}-")}
