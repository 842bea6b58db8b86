"""A fresh pids cgroup per run, so the process limit holds even when the caller is root.

``RLIMIT_NPROC`` is not checked for root (nor for a user-namespace root that maps to host root),
so a fork bomb started by a root harness would run unbounded. A pids cgroup with ``pids.max`` is
enforced for everyone, and it also lets the sandbox find and kill every process of a run.

Where one can be made:

- **cgroup v2**: under the caller's own cgroup, when ``pids`` is in its ``cgroup.subtree_control``
  or can be enabled there (it can in a container's root cgroup, not in a systemd leaf that holds
  processes: the "no internal processes" rule). ``cgroup.kill`` kills a whole group at once.
- **cgroup v1**: under the caller's cgroup in a ``pids`` hierarchy, when it is writable.

What we found on the development machine (Docker-style container, root, kernel 6.18): a hybrid
layout where ``/sys/fs/cgroup/unified`` (v2) carries no controllers besides ``hugetlb``, and the v1
``/sys/fs/cgroup/pids`` hierarchy is writable, so runs get a v1 pids cgroup. Where neither works
(e.g. an unprivileged caller without a delegated cgroup) :func:`pids_cgroup_root` returns ``None``
and the sandbox falls back to ``RLIMIT_NPROC`` for uid 65534, recording that in every result.

A process joins its cgroup in the launch chain, before it execs anything untrusted:
``sh -c 'echo $$ > .../cgroup.procs && exec ...'`` (see :mod:`rsim_env.sandbox.commands`).
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

logger = logging.getLogger(__name__)

_PREFIX = "rsim-sandbox-"


@dataclass(frozen=True)
class CgroupRoot:
    """A cgroup directory under which per-run pids cgroups can be created."""

    version: Literal[1, 2]
    path: Path


def _mounts() -> list[tuple[str, str, str, str]]:
    """``(mount point, root within the hierarchy, fstype, super options)`` of each mount."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        left_fields, right_fields = left.split(), right.split()
        if len(left_fields) >= 5 and len(right_fields) >= 3:
            mounts.append((left_fields[4], left_fields[3], right_fields[0], right_fields[2]))
    return mounts


def _own_cgroups() -> dict[str, str]:
    """Controller list (``""`` for v2) -> this process's cgroup path, from ``/proc/self/cgroup``."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        own[controllers] = path
    return own


def _inside(mount_point: str, mount_root: str, cgroup_path: str) -> Path:
    """The directory of ``cgroup_path`` as seen through a mount of the hierarchy at ``mount_root``."""
    relative = cgroup_path
    if mount_root != "/" and relative.startswith(mount_root):
        relative = relative[len(mount_root):]
    return Path(mount_point) / relative.lstrip("/")


def _usable(path: Path) -> bool:
    """A child cgroup can be made (and removed) under ``path``."""
    probe = path / f"{_PREFIX}probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
        ok = (probe / "pids.max").exists()
        probe.rmdir()
        return ok
    except OSError:
        return False


def _v2_root(mount_point: str, mount_root: str, own: dict[str, str]) -> CgroupRoot | None:
    if "" not in own:
        return None
    base = _inside(mount_point, mount_root, own[""])
    try:
        if "pids" not in (base / "cgroup.controllers").read_text().split():
            return None
        if "pids" not in (base / "cgroup.subtree_control").read_text().split():
            (base / "cgroup.subtree_control").write_text("+pids")
    except OSError:
        return None
    return CgroupRoot(2, base) if _usable(base) else None


def _v1_root(mount_point: str, mount_root: str, own: dict[str, str]) -> CgroupRoot | None:
    path = next((p for controllers, p in own.items() if "pids" in controllers.split(",")), None)
    if path is None:
        return None
    base = _inside(mount_point, mount_root, path)
    return CgroupRoot(1, base) if _usable(base) else None


@functools.lru_cache(maxsize=1)
def pids_cgroup_root() -> CgroupRoot | None:
    """Where per-run pids cgroups go on this machine (v2 preferred), or ``None`` (cached).

    Also removes the empty cgroups that processes killed before they could clean up left behind.
    """
    try:
        mounts, own = _mounts(), _own_cgroups()
    except OSError:
        return None
    found = None
    for mount_point, mount_root, fstype, _options in mounts:
        if fstype == "cgroup2" and (found := _v2_root(mount_point, mount_root, own)):
            break
    else:
        for mount_point, mount_root, fstype, options in mounts:
            if fstype == "cgroup" and "pids" in options.split(",") and (
                    found := _v1_root(mount_point, mount_root, own)):
                break
    if found is not None:
        _remove_stale(found)
    return found


def _remove_stale(root: CgroupRoot) -> None:
    """Remove ``rsim-sandbox-<pid>-*`` cgroups whose creating process is gone (empty ones only)."""
    for path in root.path.glob(f"{_PREFIX}*"):
        owner = path.name[len(_PREFIX):].split("-", 1)[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            try:
                path.rmdir()
            except OSError:
                pass  # still has processes: not ours to kill


class PidsCgroup:
    """One run's pids cgroup: created with ``pids.max``, killed and removed by :meth:`remove`."""

    def __init__(self, root: CgroupRoot, max_pids: int) -> None:
        self.root = root
        self.path = root.path / f"{_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.path.mkdir()
        try:
            (self.path / "pids.max").write_text(str(max_pids))
        except OSError:
            self.path.rmdir()
            raise

    @property
    def procs_file(self) -> str:
        """The file a process writes its pid to in order to join."""
        return str(self.path / "cgroup.procs")

    def limit_hit(self) -> bool:
        """``pids.max`` refused at least one fork."""
        try:
            for line in (self.path / "pids.events").read_text().splitlines():
                key, _, count = line.partition(" ")
                if key == "max":
                    return int(count) > 0
        except (OSError, ValueError):
            pass
        return False

    def kill(self) -> None:
        """SIGKILL every process in the group, repeating until it is empty (forks race the kill)."""
        kill_file = self.path / "cgroup.kill"
        if self.root.version == 2 and kill_file.exists():
            try:
                kill_file.write_text("1")
            except OSError:
                pass
        for _ in range(200):
            try:
                pids = [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
            except OSError:
                return
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.005)
        logger.warning("Processes are still alive in %s after repeated SIGKILL.", self.path)

    def remove(self) -> None:
        """Kill what is left and remove the directory (exiting tasks may keep it busy briefly)."""
        deadline = time.monotonic() + 5.0
        while True:
            self.kill()
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if time.monotonic() > deadline:
                    logger.warning("Could not remove sandbox cgroup %s: %s", self.path, exc)
                    return
                time.sleep(0.01)
