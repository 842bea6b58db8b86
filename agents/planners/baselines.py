"""Baseline planners and :func:`make_planner`, the factory behind ``rsim eval --planner NAME``.

The baselines answer the questions a planner has to beat: does *any* strategy injection help
(:class:`RandomPlanner`), does one strategy suffice (:class:`FixedPlanner`), is plain chain of thought
as good (:class:`NoStrategyPlanner`), does variety alone help (:class:`RoundRobinPlanner`), and how
far does a learner get that sees only returns and the strategies so far, not the text
(:class:`UCBPlanner`).

Every baseline respects the action mask: a masked strategy is never chosen, and where only
termination is legal (the step cap) termination is chosen. They need numpy only.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from agents.planners.base import (Planner, PlannerOutput, count_steps, legal_masks, load_planner,
                                  strategy_history)
from rsim_env.errors import RSIMError, UnknownStrategyError
from rsim_env.strategies import StrategySet


class UnknownPlannerError(RSIMError, ValueError):
    """A planner name :func:`make_planner` does not understand."""


def _deterministic(actions: Sequence[int]) -> PlannerOutput:
    zeros = np.zeros(len(actions), float)
    return PlannerOutput(actions=np.asarray(actions, np.int64).reshape(-1), logprobs=zeros, entropy=zeros.copy())


class _RulePlanner:
    """A deterministic planner that looks at one observation at a time; subclasses define :meth:`choose`."""

    def __init__(self, strategies: StrategySet) -> None:
        self.strategies = strategies

    def choose(self, observation: Mapping[str, Any], mask: np.ndarray, greedy: bool) -> int:
        raise NotImplementedError

    def act(self, observations: Sequence[Mapping[str, Any]], *, greedy: bool = False) -> PlannerOutput:
        masks = legal_masks(observations, len(self.strategies))
        return _deterministic([self.choose(o, m, greedy) for o, m in zip(observations, masks)])

    def reset(self, seed: int | None = None) -> None:
        """Nothing to reset: the choice depends on the observation only."""

    def update(self, actions: Sequence[Sequence[int]], returns: Sequence[float]) -> None:
        """Rules do not learn."""

    def _or_terminate(self, index: int, mask: np.ndarray) -> int:
        """``index`` if legal, else termination if legal, else the first legal strategy."""
        if mask[index]:
            return index
        term = self.strategies.termination_index
        return term if mask[term] else int(np.flatnonzero(mask)[0])


class RandomPlanner:
    """Uniform over the legal strategies.

    Args:
        strategies: the strategy set.
        seed: seeds the generator; :meth:`reset` with a seed restarts it, so runs are reproducible.
    """

    def __init__(self, strategies: StrategySet, seed: int | None = 0) -> None:
        self.strategies = strategies
        self._seed = seed
        self._rng = np.random.default_rng(seed)

    def act(self, observations: Sequence[Mapping[str, Any]], *, greedy: bool = False) -> PlannerOutput:
        """Sample uniformly among legal strategies; ``greedy`` has no most-likely choice, so it is ignored."""
        masks = legal_masks(observations, len(self.strategies))
        actions = np.array([self._rng.choice(np.flatnonzero(m)) for m in masks], np.int64).reshape(-1)
        legal = masks.sum(axis=1).astype(float)
        return PlannerOutput(actions=actions, logprobs=-np.log(legal), entropy=np.log(legal))

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self._rng = np.random.default_rng(seed)

    def update(self, actions: Sequence[Sequence[int]], returns: Sequence[float]) -> None:
        """Random choice does not learn."""


class FixedPlanner(_RulePlanner):
    """Always the same strategy; termination where it is masked (at the step cap).

    Args:
        strategies: the strategy set.
        strategy: the strategy's name.

    Raises:
        UnknownStrategyError: ``strategy`` is not in the set.
    """

    def __init__(self, strategies: StrategySet, strategy: str) -> None:
        super().__init__(strategies)
        self.strategy = strategy
        self.index = strategies.index(strategy)

    def choose(self, observation: Mapping[str, Any], mask: np.ndarray, greedy: bool) -> int:
        return self._or_terminate(self.index, mask)


class NoStrategyPlanner(FixedPlanner):
    """*Continuation* until the step cap forces termination: plain chain of thought, no strategy advice.

    Raises:
        UnknownStrategyError: the set has no ``continuation`` strategy.
    """

    def __init__(self, strategies: StrategySet) -> None:
        if "continuation" not in strategies:
            raise UnknownStrategyError(
                f"NoStrategyPlanner needs a 'continuation' strategy, but this set has only {list(strategies.names)}. "
                "Add one to the set, or use FixedPlanner(strategies, '<name>') with the strategy that means "
                "'keep going' in your set.")
        super().__init__(strategies, "continuation")


class RoundRobinPlanner(_RulePlanner):
    """Cycles through the non-terminating strategies by the episode's step position.

    The rule: at decision ``t`` (0-based, the number of steps the observation shows) choose the
    non-terminating strategy ``t mod k`` in set order (``k`` of them); if that one is masked, the next
    legal one in the cycle; if none is legal, termination. Because the choice depends on the position
    only, the planner has no hidden state: batched rollouts and one-episode-at-a-time stepping see the
    same sequence, and every episode starts the cycle afresh.
    """

    def __init__(self, strategies: StrategySet) -> None:
        super().__init__(strategies)
        self.cycle = [s.index for s in strategies if not s.terminates]

    def choose(self, observation: Mapping[str, Any], mask: np.ndarray, greedy: bool) -> int:
        t = count_steps(observation["text"])
        k = len(self.cycle)
        for offset in range(k):
            index = self.cycle[(t + offset) % k]
            if mask[index]:
                return index
        return self._or_terminate(self.strategies.termination_index, mask)


class UCBPlanner:
    """UCB1 bandits over strategies, one per decision node: the strategies chosen so far in the episode.

    A node is the episode's strategy history, read from the observation's ``Step k [strategy]`` tags
    (so ``()`` at the first decision, ``(decomposition,)`` at the second after decomposition, ...);
    this is UCT over the tree of strategy sequences with Monte-Carlo credit: every node an episode
    passed through credits the strategy it chose there with the episode's return (rewards in rSIM are
    terminal). Why not one bandit per step index: with a shared return and deterministic UCB, the
    statistics of every position stay relabellings of each other, so the positions choose in lockstep
    and the planner only ever compares a handful of fixed sequences (it cannot learn "decompose
    first, then terminate"). Nodes keep the credit of each choice tied to what came before it.

    Choice at a node among the legal arms: an arm never tried there first (seeded random tie break, so a
    batch explores different arms), else the highest ``mean + c * sqrt(ln N_node / n_node,a)``.
    ``greedy=True`` exploits: the highest mean among tried legal arms (the exploring rule where none is
    tried). Statistics change only in :meth:`update`, so rows of one batch at the same node, after
    exploring, pick the same arm (the usual delayed-feedback UCB).

    Args:
        strategies: the strategy set.
        c: exploration weight. Planner returns spread over about [-0.3, 1.3]; on ``rsim/Sim-v0`` (optimal
            expected return 1.07) c=0.25 reached a greedy return of 0.86-0.90 after 2,000 episodes, while c=1
            was still exploring the tree (0.36-0.71).
        seed: seeds the tie-breaking generator; same seed and same feedback give the same choices.
    """

    def __init__(self, strategies: StrategySet, c: float = 0.25, seed: int | None = 0) -> None:
        if c < 0:
            raise ValueError(f"UCBPlanner needs c >= 0 (the exploration weight), got {c}.")
        self.strategies = strategies
        self.c = c
        self._rng = np.random.default_rng(seed)
        self.counts: dict[tuple[int, ...], np.ndarray] = {}
        """Per node (strategy history): how often each strategy was credited there."""
        self.sums: dict[tuple[int, ...], np.ndarray] = {}
        """Per node: the summed returns of each strategy."""

    def node(self, observation: Mapping[str, Any]) -> tuple[int, ...]:
        """The decision node of an observation: the indices of the strategies used so far."""
        return tuple(self.strategies.index(name) for name in strategy_history(observation["text"]))

    def means(self, node: tuple[int, ...] = ()) -> np.ndarray:
        """Mean return per strategy at ``node`` (NaN where untried)."""
        counts = self.counts.get(node, np.zeros(len(self.strategies)))
        sums = self.sums.get(node, np.zeros(len(self.strategies)))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    def _choose(self, node: tuple[int, ...], mask: np.ndarray, greedy: bool) -> int:
        counts = self.counts.get(node, np.zeros(len(self.strategies)))
        sums = self.sums.get(node, np.zeros(len(self.strategies)))
        legal = np.flatnonzero(mask)
        tried = legal[counts[legal] > 0]
        if greedy and len(tried):
            means = sums[tried] / counts[tried]
            return int(self._rng.choice(tried[means == means.max()]))
        untried = legal[counts[legal] == 0]
        if len(untried):
            return int(self._rng.choice(untried))
        scores = sums[legal] / counts[legal] + self.c * np.sqrt(math.log(counts.sum()) / counts[legal])
        return int(self._rng.choice(legal[scores == scores.max()]))

    def act(self, observations: Sequence[Mapping[str, Any]], *, greedy: bool = False) -> PlannerOutput:
        masks = legal_masks(observations, len(self.strategies))
        return _deterministic([self._choose(self.node(o), m, greedy) for o, m in zip(observations, masks)])

    def reset(self, seed: int | None = None) -> None:
        """Reseed the tie-breaking generator; the learned statistics are kept (they are the point)."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)

    def update(self, actions: Sequence[Sequence[int]], returns: Sequence[float]) -> None:
        """Credit each episode's return to the strategy it chose at each node it passed through."""
        if len(actions) != len(returns):
            raise ValueError(f"update() needs one return per episode: got {len(actions)} action sequences and "
                             f"{len(returns)} returns.")
        n = len(self.strategies)
        for sequence, episode_return in zip(actions, returns):
            sequence = [int(a) for a in sequence]
            for t, action in enumerate(sequence):
                if not 0 <= action < n:
                    raise ValueError(f"Strategy index {action} is out of range for a set of {n} strategies.")
                node = tuple(sequence[:t])
                self.counts.setdefault(node, np.zeros(n))[action] += 1
                self.sums.setdefault(node, np.zeros(n))[action] += float(episode_return)


PLANNER_NAMES = ("random", "fixed:<strategy>", "none", "round-robin", "ucb", "llm:<model name or path>",
                 "<saved planner directory>")


def make_planner(name: str, strategies: StrategySet, *, seed: int = 0, device: str = "cpu",
                 dtype: str = "float32", **kwargs: Any) -> Planner:
    """Build a planner from its command-line name.

    Args:
        name: ``random``, ``fixed:<strategy>``, ``none`` (always continuation), ``round-robin``, ``ucb``,
            ``llm:<model name or path>`` (an untrained LLM planner reading label-token logits) or the path of
            a saved planner directory (any kind; see :func:`agents.planners.base.load_planner`).
        strategies: the environment's strategy set.
        seed: seeds random, UCB and LLM planners.
        device, dtype: for LLM planners (others ignore them).
        **kwargs: passed to the planner's constructor (e.g. ``c`` for UCB, ``head`` for LLM planners).

    Raises:
        UnknownPlannerError: an unknown name (the message lists the known ones).
        UnknownStrategyError: ``fixed:<strategy>`` names a strategy outside the set.
        StrategyMismatchError: a saved planner trained on another strategy set.
    """
    if name == "random":
        return RandomPlanner(strategies, seed=seed)
    if name.startswith("fixed:"):
        return FixedPlanner(strategies, name.removeprefix("fixed:"))
    if name == "none":
        return NoStrategyPlanner(strategies)
    if name == "round-robin":
        return RoundRobinPlanner(strategies)
    if name == "ucb":
        return UCBPlanner(strategies, seed=seed, **kwargs)
    if name.startswith("llm:"):
        from agents.planners.llm import LLMPlanner

        return LLMPlanner(name.removeprefix("llm:"), strategies, device=device, dtype=dtype, seed=seed, **kwargs)
    if Path(name).expanduser().is_dir():
        return load_planner(Path(name).expanduser(), strategies, device=device, dtype=dtype)
    raise UnknownPlannerError(
        f"Unknown planner {name!r}. Use one of {', '.join(PLANNER_NAMES)}; strategies in this set: "
        f"{', '.join(strategies.names)}.")
