"""Fixtures for sandbox tests: run at the bubblewrap level, and insist on it under CI.

Under CI (``CI=true``) or with ``RSIM_SANDBOX_STRICT=1`` an isolation test fails, rather than
skips, when bubblewrap does not work; elsewhere it skips with the reason. Every result is checked
to have run at the bubblewrap level, so a silent fallback would fail the test.
"""

from __future__ import annotations

import os
from typing import Callable

import pytest

from rsim_env.sandbox import SandboxResult, isolation_report, run_program, strict_from_env

def under_ci() -> bool:
    """CI (or strict mode) requires the bubblewrap level."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or strict_from_env()


@pytest.fixture
def bwrap_run() -> Callable[..., SandboxResult]:
    """``run_program`` pinned to bubblewrap in strict mode, asserting the level of each result."""
    report = isolation_report()
    if "bubblewrap" not in report.levels:
        reason = f"bubblewrap does not work here: {report.unavailable.get('bubblewrap')}"
        if under_ci():
            pytest.fail(f"CI requires the bubblewrap sandbox level; {reason}")
        pytest.skip(reason)

    def run(source: str, **kwargs) -> SandboxResult:
        result = run_program(source, level="bubblewrap", strict=True, **kwargs)
        assert result.level == "bubblewrap", f"ran at {result.level!r}, not bubblewrap"
        return result

    return run

