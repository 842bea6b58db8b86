"""Terminal, rule-based rewards (rSIM §3.3: R_acc, R_terminal, R_penalty).

When an episode ends, the env builds an :class:`EpisodeRecord` and turns it into one reward per
agent, either with :func:`default_rewards` and a :class:`RewardConfig`, or with a user function
``reward_fn(record) -> {"planner": float, "reasoner": float}``.

Default rewards:

* reasoner: ``accuracy * correct + format * formatted``
* planner:  ``accuracy * correct + terminal * ended_by_termination - repetition_penalty * repeats``

where ``repeats`` counts the decisions that chose the same strategy as the decision right before
it, ignoring the strategies in ``penalty_exempt`` (by default *continuation*: carrying on is not
repetitive strategy use). A truncated episode (token budget) has no answer, so ``correct = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal, Mapping, Sequence

from rsim_env.checkers.base import CheckResult
from rsim_env.errors import ConfigError
from rsim_env.tasks.task import Task

EndReason = Literal["termination", "answer", "truncated"]


@dataclass(frozen=True)
class RewardConfig:
    """Weights of the default reward terms."""

    accuracy: float = 1.0
    """R_acc: paid to both agents when the final answer is correct."""
    terminal: float = 0.1
    """R_terminal: paid to the planner when it ended the episode through the terminating strategy."""
    repetition_penalty: float = 0.05
    """R_penalty: subtracted from the planner's reward per immediately repeated strategy."""
    format: float = 0.0
    """Paid to the reasoner when its final answer is in the expected format (e.g. ``\\boxed{}``)."""
    penalty_exempt: tuple[str, ...] = ("continuation",)
    """Strategies whose repetition is never penalised."""

    def __post_init__(self) -> None:
        for name in ("accuracy", "terminal", "repetition_penalty", "format"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value != value:
                raise ConfigError(f"RewardConfig.{name} must be a finite number, got {value!r}.")


@dataclass(frozen=True)
class EpisodeRecord:
    """Everything a reward function may look at, built once when an episode ends."""

    task: Task
    strategies: tuple[str, ...]
    steps: tuple[str, ...]
    ended_by: EndReason
    check: CheckResult
    tokens: int
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def correct(self) -> bool:
        return self.check.correct


RewardFn = Callable[[EpisodeRecord], Mapping[str, float]]


def count_repeats(strategies: Sequence[str], exempt: Sequence[str] = ()) -> int:
    """Decisions that repeat the previous decision's strategy, ignoring ``exempt`` strategies."""
    return sum(1 for prev, cur in zip(strategies, strategies[1:]) if cur == prev and cur not in exempt)


def default_rewards(record: EpisodeRecord, config: RewardConfig) -> dict[str, float]:
    """The paper's reward terms with ``config``'s weights (see the module docstring)."""
    correct = float(record.correct)
    formatted = float(record.check.formatted)
    repeats = count_repeats(record.strategies, config.penalty_exempt)
    return {
        "planner": config.accuracy * correct
        + config.terminal * float(record.ended_by == "termination")
        - config.repetition_penalty * repeats,
        "reasoner": config.accuracy * correct + config.format * formatted,
    }
