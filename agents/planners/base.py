"""What every planner shares: the output record, the protocol, mask handling, saving and loading.

A *planner* picks a strategy for a batch of planner observations (the env's dicts with ``"text"`` and
``"action_mask"``) and says how likely its choice was, so that rollouts can record log-probabilities for
policy-gradient training. The protocol is deliberately small (``act``, ``reset``, ``update``) so that a
hand-written rule, a bandit, a Stable-Baselines3 model and an LLM can all drive the same rollout.

A saved planner is a directory with a ``planner.json`` whose ``kind`` names the class that reads the
rest; :func:`load_planner` dispatches on it. Every saved planner carries its strategy set, and loading
it against a different set raises :class:`StrategyMismatchError` instead of silently mapping action
indices onto the wrong strategies.

This module needs only numpy, so baselines work without torch.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from rsim_env.errors import RSIMError
from rsim_env.strategies import StrategySet

if TYPE_CHECKING:
    import torch

PLANNER_FILE = "planner.json"
"""The file in a saved planner's directory that says what it is (``kind``) and what it was trained on."""


class StrategyMismatchError(RSIMError, ValueError):
    """A saved planner was trained on a different strategy set than the one it is asked to drive."""


class PlannerObservationError(RSIMError, ValueError):
    """A planner observation without a usable ``action_mask`` (missing, wrong size, or nothing legal)."""


class PlannerLoadError(RSIMError, ValueError):
    """A directory that does not hold a saved planner rsim can read."""


@dataclass
class PlannerOutput:
    """A planner's decision for a batch of observations.

    Attributes:
        actions: ``(B,)`` int64 strategy indices, always legal under the observations' masks.
        logprobs: ``(B,)`` float, ``log pi(action | obs)`` under the policy that chose the action
            (0.0 for deterministic baselines: they put all mass on their choice).
        entropy: ``(B,)`` float, the entropy of the masked action distribution (0.0 when deterministic).
    """

    actions: np.ndarray
    logprobs: np.ndarray
    entropy: np.ndarray

    def __len__(self) -> int:
        return len(self.actions)


@runtime_checkable
class Planner(Protocol):
    """A strategy-selection policy over batches of planner observations."""

    strategies: StrategySet

    def act(self, observations: Sequence[Mapping[str, Any]], *, greedy: bool = False) -> PlannerOutput:
        """Choose one legal strategy per observation; ``greedy`` picks the most likely one."""
        ...

    def reset(self, seed: int | None = None) -> None:
        """Reset per-run state (random generator, cycle position); learned statistics are kept."""
        ...

    def update(self, actions: Sequence[Sequence[int]], returns: Sequence[float]) -> None:
        """Feedback after finished episodes: each episode's strategy sequence and its planner return."""
        ...


def legal_masks(observations: Sequence[Mapping[str, Any]], n: int) -> np.ndarray:
    """The observations' action masks as a ``(B, n)`` bool array, checked.

    Raises:
        PlannerObservationError: a mask is missing, has the wrong size, or allows nothing (the episode
            is over; a planner has nothing to choose).
    """
    rows = []
    for i, obs in enumerate(observations):
        if "action_mask" not in obs:
            raise PlannerObservationError(
                f"Observation #{i} has no 'action_mask'; pass the env's planner observation "
                "(env.observe('planner')), which holds 'text' and 'action_mask'.")
        mask = np.asarray(obs["action_mask"]).astype(bool).reshape(-1)
        if mask.shape != (n,):
            raise PlannerObservationError(
                f"Observation #{i} has an action mask of size {mask.size}, but the planner's strategy set has {n} "
                "strategies; the env and the planner must use the same strategy set.")
        if not mask.any():
            raise PlannerObservationError(
                f"Observation #{i} allows no strategy: its episode has ended. Only ask planners about running "
                "episodes.")
        rows.append(mask)
    return np.stack(rows) if rows else np.zeros((0, n), bool)


def masked_entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """Entropy of each row of masked log-probabilities ``[B, n]`` (masked entries are -inf and add 0)."""
    probs = log_probs.exp()
    return -(probs * log_probs.masked_fill(probs == 0, 0.0)).sum(-1)


def strategy_history(planner_text: str) -> list[str]:
    """The names of the strategies used so far, read from a planner observation's text, in order.

    The env writes ``Step k [strategy]: ...`` lines after ``Steps so far:``. The lines are looked up in
    order (``Step 1 [``, then ``Step 2 [`` after it, ...) rather than matched anywhere, so a step whose
    own text mentions another step number does not add a strategy.
    """
    _, found, steps = planner_text.partition("\nSteps so far:\n")
    names: list[str] = []
    if not found:
        return names
    text, position = "\n" + steps, 0
    while True:
        tag = f"\nStep {len(names) + 1} ["
        position = text.find(tag, position)
        end = text.find("]", position + len(tag)) if position >= 0 else -1
        if end < 0:
            return names
        names.append(text[position + len(tag):end])
        position = end


def count_steps(planner_text: str) -> int:
    """How many reasoner steps a planner observation shows, i.e. the index of the coming decision."""
    return len(strategy_history(planner_text))


def check_strategies(saved: StrategySet, strategies: StrategySet | None, where: str | Path) -> StrategySet:
    """Return the set to use for a planner saved at ``where``; refuse a different ``strategies``.

    Raises:
        StrategyMismatchError: ``strategies`` is given and differs from ``saved`` (names, prompts or order).
    """
    if strategies is None or strategies.fingerprint() == saved.fingerprint():
        return saved
    if list(saved.names) == list(strategies.names):
        difference = "the same names in the same order, but different prompt texts"
    elif sorted(saved.names) == sorted(strategies.names):
        difference = "the same names in a different order (so the action indices differ)"
    else:
        difference = "different strategies"
    raise StrategyMismatchError(
        f"The planner saved in {str(where)!r} was trained with the strategies {list(saved.names)}, but it is asked "
        f"to drive an environment with {list(strategies.names)}: {difference}. Run it on an environment built with "
        f"its own set (the 'strategies' entry of its {PLANNER_FILE}; e.g. rsim_env.make(id, strategies=...)), or "
        "train a planner for this set.")


def read_planner_file(directory: str | Path) -> dict[str, Any]:
    """The parsed ``planner.json`` of a saved planner directory.

    Raises:
        PlannerLoadError: the directory or its ``planner.json`` is missing or unreadable.
    """
    path = Path(directory) / PLANNER_FILE
    if not path.is_file():
        raise PlannerLoadError(
            f"{str(directory)!r} is not a saved planner: it has no {PLANNER_FILE}. Pass a directory written by a "
            "planner's save() (e.g. a training run's 'planner' folder).")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise PlannerLoadError(f"{str(path)!r} is not valid JSON ({err}); the saved planner is damaged.") from err
    if not isinstance(meta, dict) or "kind" not in meta or "strategies" not in meta:
        raise PlannerLoadError(f"{str(path)!r} lacks 'kind' or 'strategies'; it was not written by an rsim planner.")
    return meta


def write_directory_atomic(directory: str | Path, build: Callable[[Path], None]) -> Path:
    """Write a directory all at once: ``build(tmp)`` fills a temporary folder beside it, then it is renamed.

    A reader never sees a half-written planner: the new folder appears complete, and an old folder at the
    same place is moved aside first and deleted only after the new one is in place (a crash in between
    leaves the old one beside the target under a ``.old-`` name, never a mixture).
    """
    final = Path(directory)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    old: Path | None = None
    try:
        build(tmp)
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
            os.rename(final, old / final.name)
        try:
            os.rename(tmp, final)
        except BaseException:
            if old is not None:
                os.rename(old / final.name, final)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_planner(directory: str | Path, strategies: StrategySet | None = None, *, device: str = "cpu",
                 **kwargs: Any) -> Planner:
    """Load any saved planner, dispatching on the ``kind`` in its ``planner.json``.

    Args:
        directory: a folder written by a planner's ``save()``.
        strategies: the environment's strategy set; when given it must equal the saved one.
        device: where model weights go (LLM planners; others ignore it).
        **kwargs: passed to the kind's ``load`` (e.g. ``dtype`` for LLM planners).

    Raises:
        PlannerLoadError: no ``planner.json``, or a kind rsim does not know.
        StrategyMismatchError: ``strategies`` differs from the planner's own set.
    """
    kind = read_planner_file(directory)["kind"]
    if kind == "llm":
        from agents.planners.llm import LLMPlanner

        return LLMPlanner.load(directory, strategies, device=device, **kwargs)
    if kind == "sb3":
        from agents.planners.sb3 import SB3Planner

        return SB3Planner.load(directory, strategies, device=device)
    if kind == "mlp":
        from agents.planners.mlp import MLPPlanner

        return MLPPlanner.load(directory, strategies)
    raise PlannerLoadError(f"{str(directory)!r} holds a planner of unknown kind {kind!r}; rsim reads 'llm', 'sb3' "
                           "and 'mlp'. Was it written by a newer rsim?")
