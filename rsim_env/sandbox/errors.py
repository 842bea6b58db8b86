"""The sandbox's own exception: it refuses to run rather than run weaker than asked."""

from __future__ import annotations

from rsim_env.errors import RSIMError


class SandboxUnavailableError(RSIMError, RuntimeError):
    """The requested (or, in strict mode, the required bubblewrap) isolation level cannot run here.

    The message names the level, why it is unavailable on this machine, and what to install.
    """
