"""The checker interface: decide whether a reasoner's final answer solves a task.

A checker never raises on bad answers and never hangs: garbage, huge or adversarial input gives
``CheckResult(correct=False, reason=...)``. The env turns a ``CheckResult`` into rewards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Protocol, runtime_checkable

if TYPE_CHECKING:
    from rsim_env.tasks.task import Task


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one final answer.

    Attributes:
        correct: whether the answer solves the task.
        answer: the answer the checker extracted from the response (``None`` if none was found).
        reason: a short human-readable explanation (``"equivalent"``, ``"no answer found"``,
            ``"timeout"``, ``"3/5 tests failed"``, ...).
        formatted: whether the answer was given in the task's expected format (e.g. ``\\boxed{}``);
            used by the optional format reward.
        details: checker-specific extras for debugging (method used, parsed forms, test output).
    """

    correct: bool
    answer: str | None
    reason: str
    formatted: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Checker(Protocol):
    """Anything with ``check(response, task) -> CheckResult``."""

    def check(self, response: str, task: Task) -> CheckResult:
        """Judge ``response`` (the reasoner's final step, or whole output) against ``task``."""
        ...
