"""What this machine offers the sandbox: the tools on the system PATH and what bubblewrap supports.

Found by looking, never by trying untrusted code; the trial runs that decide which isolation
levels actually work live in :mod:`rsim_env.sandbox.run`. Everything is looked up once per process.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Mapping

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""Where sandbox tools are looked up (not the caller's PATH, which may hold a venv or pyenv shims)."""

NOBODY = 65534
"""The unprivileged uid/gid programs run as (Debian's ``nobody``/``nogroup``)."""

REQUIRED_TOOLS = ("sh", "prlimit")
"""Needed at every level: a POSIX shell for the launch chain and util-linux ``prlimit``."""

OPTIONAL_TOOLS = ("bwrap", "unshare", "setpriv", "mount", "env")
"""``bwrap`` for the bubblewrap level; ``unshare``/``mount`` for the unshare level; ``setpriv`` to
drop root to uid 65534; ``env`` to give the program a clean environment outside bubblewrap."""

BWRAP_OPTIONAL_FLAGS = ("--disable-userns", "--size")
"""bubblewrap flags newer than 0.6 that the sandbox uses when present (0.8+ has both)."""


@dataclass(frozen=True)
class HostTools:
    """The sandbox tools found on this machine.

    Attributes:
        paths: tool name -> absolute path, for every tool found.
        is_root: the caller's effective uid is 0 (then programs are dropped to uid 65534).
        bwrap_flags: which of :data:`BWRAP_OPTIONAL_FLAGS` this bubblewrap accepts.
    """

    paths: Mapping[str, str]
    is_root: bool
    bwrap_flags: frozenset[str]

    def has(self, *names: str) -> bool:
        """All of ``names`` were found."""
        return all(name in self.paths for name in names)

    def missing(self, *names: str) -> list[str]:
        """Those of ``names`` that were not found."""
        return [name for name in names if name not in self.paths]


@functools.lru_cache(maxsize=1)
def host_tools() -> HostTools:
    """Find the sandbox tools (cached for the life of the process)."""
    paths = {name: found for name in REQUIRED_TOOLS + OPTIONAL_TOOLS
             if (found := shutil.which(name, path=SYSTEM_PATH))}
    flags: frozenset[str] = frozenset()
    if "bwrap" in paths:
        try:
            help_text = subprocess.run([paths["bwrap"], "--help"], capture_output=True, text=True,
                                       timeout=10, env={"PATH": SYSTEM_PATH}).stdout
        except (OSError, subprocess.SubprocessError):
            help_text = ""
        flags = frozenset(flag for flag in BWRAP_OPTIONAL_FLAGS if f"{flag} " in help_text)
    return HostTools(paths=paths, is_root=os.geteuid() == 0, bwrap_flags=flags)
