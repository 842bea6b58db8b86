"""The simulated reasoner and its suite (``rsim/Sim-v0``).

A cheap, stochastic stand-in for an LLM reasoner whose strategy effects are known exactly, so that
planner learning is fast enough for tests, teaching and algorithm research, and so that the best
achievable return is computable. It complements the LLM reasoners; it never replaces them.

**Tasks.** "Add the numbers 12, 7, 30" with 2-4 numbers and a difficulty, *easy* or *hard*. The
reference answer is the sum.

**State.** After every step the simulated reasoner writes a tag such as
``[progress=2/3 doubt=no plan=yes total=19]``: how many numbers it has added, whether it doubts its
running total (an arithmetic slip happened and is not yet fixed), whether it has a plan, and the
running total. The tag is part of the step text, so the planner sees it in its observation: the
process is a fully observable MDP over (progress, doubt, plan, last strategy, step).

**Strategy effects** (``s`` = progress probability: 0.8 easy / 0.5 hard, +0.2 with a plan, at most 1;
``e`` = slip probability per added number: 0.1 easy / 0.35 hard):

| strategy | effect |
|---|---|
| continuation | adds the next number with probability ``s``; a slip happens with probability ``e`` |
| deep_thinking | adds the next number with probability ``0.75 s``, never slips |
| verification | if in doubt, fixes the total with probability 0.9 |
| self_reflection | if in doubt, fixes the total with probability 0.6 |
| decomposition | makes a plan (certain) |
| sub_planning | makes a plan with probability 0.6 |
| summarization, prioritization, any other | no effect |
| termination | states the running total as the final answer |

The answer is correct exactly when every number is added and there is no doubt. Because slips are
likely on hard tasks and rare on easy ones, and a plan only pays off before the work starts, no
single fixed strategy is optimal: a good planner reads the tag (plan first, continue on easy tasks,
think deeply on hard ones, verify when in doubt, terminate when done). A uniformly random planner
terminates early and scores far lower. :func:`expected_return` computes the exact expected planner
return of the optimal, uniform-random or any given policy by dynamic programming.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

from rsim_env.checkers.math import MathChecker
from rsim_env.env.rewards import RewardConfig
from rsim_env.strategies import StrategySet
from rsim_env.tasks.registry import register_suite
from rsim_env.tasks.task import Split, Task, TaskSuite

PROGRESS_P = {"easy": 0.8, "hard": 0.5}
PLAN_BONUS = 0.2
SLIP_P = {"easy": 0.1, "hard": 0.35}
DEEP_FACTOR = 0.75
FIX_P = {"verification": 0.9, "self_reflection": 0.6}
PLAN_P = {"decomposition": 1.0, "sub_planning": 0.6}

_TAG = re.compile(r"\[progress=(\d+)/(\d+) doubt=(yes|no) plan=(yes|no) total=(-?\d+)\]")
_QUESTION = re.compile(r"Add the numbers ([\d, ]+)\. \(Simulated task; difficulty: (easy|hard)\.\)")
_STRATEGY = "[strategy: "
_SLIPS = (-10, -2, -1, 1, 2, 10)


@dataclass(frozen=True)
class SimState:
    """The simulated reasoner's state after some steps."""

    progress: int = 0
    doubt: bool = False
    plan: bool = False
    total: int = 0

    def tag(self, parts: int) -> str:
        yes_no = ("no", "yes")
        return (f"[progress={self.progress}/{parts} doubt={yes_no[self.doubt]} "
                f"plan={yes_no[self.plan]} total={self.total}]")


def transitions(strategy: str, state: SimState, difficulty: str, parts: int) -> list[tuple[float, str]]:
    """The outcomes of applying ``strategy`` in ``state``: ``[(probability, outcome), ...]``.

    Outcomes are ``"progress"``, ``"progress_slip"``, ``"fix"``, ``"plan"`` and ``"none"``; one table
    serves both the sampling reasoner and the exact dynamic programme.
    """
    s = min(1.0, PROGRESS_P[difficulty] + (PLAN_BONUS if state.plan else 0.0))
    if strategy == "continuation" and state.progress < parts:
        e = SLIP_P[difficulty]
        return [(s * (1 - e), "progress"), (s * e, "progress_slip"), (1 - s, "none")]
    if strategy == "deep_thinking" and state.progress < parts:
        return [(DEEP_FACTOR * s, "progress"), (1 - DEEP_FACTOR * s, "none")]
    if strategy in FIX_P and state.doubt:
        return [(FIX_P[strategy], "fix"), (1 - FIX_P[strategy], "none")]
    if strategy in PLAN_P and not state.plan:
        return [(PLAN_P[strategy], "plan"), (1 - PLAN_P[strategy], "none")]
    return [(1.0, "none")]


def _apply(outcome: str, state: SimState, numbers: Sequence[int], slip: int) -> SimState:
    if outcome == "progress":
        return replace(state, progress=state.progress + 1, total=state.total + numbers[state.progress])
    if outcome == "progress_slip":
        return replace(state, progress=state.progress + 1, doubt=True,
                       total=state.total + numbers[state.progress] + slip)
    if outcome == "fix":
        return replace(state, doubt=False, total=sum(numbers[: state.progress]))
    if outcome == "plan":
        return replace(state, plan=True)
    return state


_PROSE = {
    "progress": "Added {x}; the running total is {t}.",
    "progress_slip": "Added {x}; the running total is {t}, but I am not sure that addition was right.",
    "fix": "Rechecked the additions and corrected the running total to {t}.",
    "plan": "Planned the work: add the {n} numbers one at a time, left to right.",
    "none": "Thought about the problem ({name}) without changing the running total {t}.",
}


def parse_question(text: str) -> tuple[list[int], str] | None:
    """The numbers and difficulty of a simulated task found in ``text`` (``None`` if absent)."""
    start = text.find("Add the numbers ")
    if start < 0:
        return None
    end = text.find("\n", start)
    return _parse_question_line(text[start:] if end < 0 else text[start:end])


@lru_cache(maxsize=4096)
def _parse_question_line(line: str) -> tuple[list[int], str] | None:
    match = _QUESTION.match(line)
    if match is None:
        return None
    return [int(x) for x in match.group(1).split(",")], match.group(2)


def parse_state(text: str) -> SimState:
    """The state in the last tag of ``text`` (the initial state if there is none)."""
    start = text.rfind("[progress=")
    match = _TAG.match(text, start) if start >= 0 else None
    if match is None:
        return SimState()
    return SimState(int(match.group(1)), match.group(3) == "yes", match.group(4) == "yes", int(match.group(5)))


def parse_strategy(text: str) -> str | None:
    """The name of the last injected strategy in a reasoner prompt."""
    start = text.rfind(_STRATEGY)
    if start < 0:
        return None
    end = text.find("]", start)
    return text[start + len(_STRATEGY): end] if end > 0 else None


class SimulatedReasoner:
    """A stochastic reasoner policy for simulated tasks; reads the env's reasoner text.

    Args:
        strategies: the env's strategy set (to recognise the terminating strategy).
        seed: seeds its random generator (reseed with :meth:`seed`).
    """

    def __init__(self, strategies: StrategySet | None = None, seed: int | None = None) -> None:
        self.strategies = strategies or StrategySet.default()
        self._terminating = self.strategies[self.strategies.termination_index].name
        self._rng = np.random.default_rng(seed)

    def seed(self, seed: int | None) -> None:
        self._rng = np.random.default_rng(seed)

    def act(self, text: str) -> str:
        """The next step for the reasoner prompt ``text`` (as given in the env's observation)."""
        parsed = parse_question(text)
        if parsed is None:
            return "I cannot read this task; the answer is \\boxed{0}."
        numbers, difficulty = parsed
        state = parse_state(text)
        strategy = parse_strategy(text) or "continuation"
        if strategy == self._terminating:
            return f"The answer is \\boxed{{{state.total}}}."
        options = transitions(strategy, state, difficulty, len(numbers))
        draw, cumulative = self._rng.random(), 0.0
        outcome = options[-1][1]
        for p, candidate in options:
            cumulative += p
            if draw < cumulative:
                outcome = candidate
                break
        slip = _SLIPS[int(self._rng.integers(len(_SLIPS)))] if outcome == "progress_slip" else 0
        new = _apply(outcome, state, numbers, slip)
        prose = _PROSE[outcome].format(x=numbers[min(state.progress, len(numbers) - 1)], t=new.total,
                                       n=len(numbers), name=strategy.replace("_", " "))
        return f"{prose} {new.tag(len(numbers))}"

    def act_batch(self, texts: Sequence[str]) -> list[str]:
        return [self.act(t) for t in texts]


# -- the suite ------------------------------------------------------------------------------------
def make_sim_task(index: int, numbers: Sequence[int], difficulty: str) -> Task:
    prompt = f"Add the numbers {', '.join(map(str, numbers))}. (Simulated task; difficulty: {difficulty}.)"
    return Task(id=f"sim-{index:05d}", prompt=prompt, kind="sim", answer=str(sum(numbers)),
                metadata={"numbers": list(numbers), "difficulty": difficulty})


def sim_suite(size: int = 1000, seed: int = 0, test_fraction: float = 0.2) -> TaskSuite:
    """``size`` simulated tasks: 2-4 numbers in [1, 50], half easy, half hard (seeded)."""
    rng = np.random.default_rng(seed)
    tasks = []
    for i in range(size):
        parts = int(rng.integers(2, 5))
        numbers = [int(x) for x in rng.integers(1, 51, parts)]
        tasks.append(make_sim_task(i, numbers, "easy" if rng.random() < 0.5 else "hard"))
    return TaskSuite("sim", tasks, MathChecker(), test_fraction=test_fraction, split_seed=seed,
                     description="Simulated reasoner tasks with known strategy effects (exact optimum).")


register_suite("sim", sim_suite, description="Simulated reasoner tasks with known strategy effects and an exact optimum.",
               kind="sim")


# -- exact values by dynamic programming -----------------------------------------------------------
Policy = Callable[[SimState, int, int | None, int, str], np.ndarray]
"""``policy(state, parts, last_action, step, difficulty) -> probabilities over strategies``."""


def _correct(state: SimState, parts: int) -> bool:
    return state.progress == parts and not state.doubt


@lru_cache(maxsize=256)
def _task_values(parts: int, difficulty: str, max_steps: int, rewards: RewardConfig,
                 strategies: StrategySet) -> dict:
    """Optimal action values Q[(step, state, last)] -> array over strategies, by backward induction."""
    names = strategies.names
    term = strategies.termination_index
    n = len(names)
    states = [SimState(k, d, p) for k in range(parts + 1) for d in (False, True) for p in (False, True)]
    q: dict = {}
    v_next: dict = {}
    for step in range(max_steps - 1, -1, -1):
        v_now = {}
        for state in states:
            for last in [None, *range(n)]:
                values = np.full(n, -np.inf)
                terminal = rewards.accuracy * _correct(state, parts) + rewards.terminal
                values[term] = terminal
                if step < max_steps - 1:
                    for a in range(n):
                        if a == term:
                            continue
                        penalty = rewards.repetition_penalty * (a == last and names[a] not in rewards.penalty_exempt)
                        future = sum(p * v_next[(_apply(o, state, [0] * parts, 0), a)]
                                     for p, o in transitions(names[a], state, difficulty, parts) if p > 0)
                        values[a] = future - penalty
                q[(step, state, last)] = values
                v_now[(state, last)] = values
        v_next = {key: float(np.max(vals)) for key, vals in v_now.items()}
    return q


def _policy_return(parts: int, difficulty: str, max_steps: int, rewards: RewardConfig,
                   strategies: StrategySet, policy: Policy | None) -> float:
    """Expected planner return from the initial state under ``policy`` (``None``: optimal)."""
    q = _task_values(parts, difficulty, max_steps, rewards, strategies)
    names = strategies.names
    term = strategies.termination_index

    @lru_cache(maxsize=None)
    def value(step: int, state: SimState, last: int | None) -> float:
        values = q[(step, state, last)]
        if policy is None:
            return float(np.max(values))
        probs = np.asarray(policy(state, parts, last, step, difficulty), float)
        total = 0.0
        for a in np.flatnonzero(probs > 0):
            if a == term or step == max_steps - 1:
                total += probs[a] * values[term]
                continue
            penalty = rewards.repetition_penalty * (a == last and names[a] not in rewards.penalty_exempt)
            future = sum(p * value(step + 1, _apply(o, state, [0] * parts, 0), int(a))
                         for p, o in transitions(names[a], state, difficulty, parts) if p > 0)
            total += probs[a] * (future - penalty)
        return total

    return value(0, SimState(), None)


def optimal_action(state: SimState, parts: int, last: int | None, step: int, difficulty: str, *,
                   max_steps: int, rewards: RewardConfig | None = None,
                   strategies: StrategySet | None = None) -> int:
    """An optimal strategy index in the given situation (ties go to termination: stop when done)."""
    strategies = strategies or StrategySet.default()
    q = _task_values(parts, difficulty, max_steps, rewards or RewardConfig(), strategies)
    values = q[(step, SimState(state.progress, state.doubt, state.plan), last)]
    if values[strategies.termination_index] >= values.max() - 1e-12:
        return strategies.termination_index
    return int(np.argmax(values))


def uniform_policy(n: int, termination_index: int, max_steps: int) -> Policy:
    """The uniform random planner (respecting the step-cap mask)."""
    def policy(state: SimState, parts: int, last: int | None, step: int, difficulty: str) -> np.ndarray:
        if step == max_steps - 1:
            probs = np.zeros(n)
            probs[termination_index] = 1.0
            return probs
        return np.full(n, 1.0 / n)
    return policy


def expected_return(suite: TaskSuite, *, split: Split = "train", max_steps: int = 10,
                    rewards: RewardConfig | None = None, strategies: StrategySet | None = None,
                    policy: Policy | str | None = "optimal") -> float:
    """Exact expected planner return over ``split`` of a simulated suite.

    ``policy`` is ``"optimal"``, ``"random"`` (uniform over legal strategies) or a :data:`Policy`.
    """
    strategies = strategies or StrategySet.default()
    rewards = rewards or RewardConfig()
    if policy == "random":
        policy = uniform_policy(len(strategies), strategies.termination_index, max_steps)
    elif policy == "optimal":
        policy = None
    kinds: dict[tuple[int, str], int] = {}
    for task in suite.split(split):
        key = (len(task.metadata["numbers"]), task.metadata["difficulty"])
        kinds[key] = kinds.get(key, 0) + 1
    total = sum(count * _policy_return(parts, diff, max_steps, rewards, strategies, policy)
                for (parts, diff), count in kinds.items())
    return total / sum(kinds.values())
