"""The two-agent rSIM environment (PettingZoo AEC).

| | |
|---|---|
| Import | `rsim_env.env(suite="arithmetic")` or `rsim_env.make("rsim/Arithmetic-v0")` |
| Actions | planner: Discrete; reasoner: Text |
| Parallel API | No |
| Manual control | `rsim play` |
| Agents | `agents = ["planner", "reasoner"]` |
| Number of agents | 2 |
| Action shape | planner: `()`; reasoner: a string |
| Action values | planner: `Discrete(len(strategies))` with `action_mask`; reasoner: `UnicodeText(max_step_chars)` |
| Observation shape | `Dict(observation=(max_obs_bytes,), text, action_mask=(len(strategies),))` |
| Observation values | `observation`: uint8 in [0, 255]; `text`: str; `action_mask`: int8 in {0, 1} |

An episode is one task from the suite. The **planner** moves first and picks a reasoning strategy;
the strategy's prompt is injected into the chain of thought; the **reasoner** writes the next step
as text. They alternate until the reasoner has written the step that follows the terminating
strategy (the final answer). The task's checker then judges that answer and both agents receive
their terminal rewards. Every registered id (``rsim_env.list_envs()``) is this class with a suite and
defaults; each has a module in ``rsim_env/envs`` documenting its task.

## Arguments

``env(suite, *, strategies=None, render_mode=None, reward_fn=None, token_counter=None,
suite_kwargs=None, **config)``

* ``suite``: a registered suite name (``rsim_env.list_suites()``) or a ``TaskSuite``.
* ``strategies``: a ``StrategySet`` or a path to a YAML/JSON strategy file (default: the paper's nine).
* ``render_mode``: ``"ansi"`` (``render()`` returns the chain of thought) or ``"human"`` (prints it).
* ``reward_fn``: ``f(EpisodeRecord) -> {"planner": r, "reasoner": r}`` replacing the default rewards.
* ``token_counter``: ``f(text) -> int`` for the token budget (default: words and punctuation marks;
  pass your tokenizer's length for exact counts).
* ``suite_kwargs``: passed to the suite factory (e.g. ``{"size": 200, "seed": 1}``).
* ``**config``: any field of :class:`EnvConfig` (``max_steps``, ``max_tokens``, ``end_on_answer``,
  ``split``, ``rewards``, ...).

## Observation Space

A ``Dict``. ``"text"`` is what the agent reads; ``"observation"`` is the same text as UTF-8 bytes,
zero-padded to ``max_obs_bytes`` (when the text is longer, its *last* ``max_obs_bytes`` bytes are
kept, so the most recent steps survive), for tools that need a fixed-size numeric array. The
planner's text is the question and the steps so far, each tagged with its strategy; its
``"action_mask"`` marks the legal strategies (at the step cap only the terminating one). The
reasoner's text is its full prompt: an instruction, the question, and the chain of thought with every
injected strategy prompt, ending with the strategy for the step it must write now.

## Action Space

Planner: an integer strategy index, ``Discrete(len(strategies))``; masked-out actions are illegal.
Reasoner: a string, the next step (any Unicode up to ``max_step_chars`` characters).

## Rewards

Terminal only, from the task's checker: see :mod:`rsim_env.env.rewards` (R_acc for both agents,
R_terminal and R_penalty for the planner, an optional format term for the reasoner).

## Episode end

* the reasoner writes the step after the terminating strategy (``ended_by="termination"``);
* with ``end_on_answer=True``, as soon as the reasoner states a final answer on its own
  (``\\boxed{}``, "the answer is", ``####``; ``ended_by="answer"``);
* at ``max_steps`` the mask allows only termination, so the last step is always the final answer
  (the checker reads it; when it states no answer at all, the whole chain, see ``answer_from_chain``);
* when the reasoner's steps exceed ``max_tokens`` the episode is truncated without an answer.

## Version History

* v0: initial release.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv
from pettingzoo.utils import wrappers

from rsim_env.checkers.answer import extract_answer, has_final_answer
from rsim_env.checkers.base import CheckResult
from rsim_env.env.rewards import EndReason, EpisodeRecord, RewardConfig, RewardFn, default_rewards
from rsim_env.env.spaces import UnicodeText
from rsim_env.errors import ActionTypeError, ConfigError, EpisodeOverError, IllegalActionError
from rsim_env.strategies import StrategySet
from rsim_env.tasks.registry import make_suite
from rsim_env.tasks.task import Split, Task, TaskSuite

PLANNER, REASONER = "planner", "reasoner"

DEFAULT_INSTRUCTION = (
    "Solve the problem step by step. Before each step you are given a strategy; follow it and write "
    "exactly one step. When told to give the final answer, write it as \\boxed{answer}."
)

CODE_INSTRUCTION = (
    "Solve the programming task step by step. Before each step you are given a strategy; follow it and "
    "write exactly one step. When told to give the final answer, write the complete solution in one "
    "```python code block."
)

_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """Default token counter: words and punctuation marks (an LLM tokenizer gives ~1.3x more)."""
    return len(_TOKEN.findall(text))


def reasoner_header(instruction: str, question: str) -> str:
    """The start of every reasoner prompt; the chain of thought (strategies and steps) follows it.

    LLM front-ends split a reasoner observation here, e.g. to put the header in a chat template's
    user turn and continue the chain of thought as the assistant.
    """
    return f"{instruction}\n\nQuestion: {question}\n\n"


@dataclass(frozen=True)
class EnvConfig:
    """Episode rules. Every field can be passed to ``rsim_env.env(...)`` as a keyword."""

    max_steps: int = 8
    """Most reasoner steps per episode; the planner's last decision may only terminate."""
    max_tokens: int = 4096
    """Token budget for the reasoner's steps; exceeding it truncates the episode without an answer."""
    end_on_answer: bool = False
    """End the episode as soon as the reasoner states a final answer, even without termination."""
    split: Split = "train"
    """Which split of the suite episodes draw tasks from: ``"train"``, ``"test"`` or ``"all"``."""
    max_step_chars: int = 8192
    """Longest reasoner step accepted (the reasoner's ``Text`` action space)."""
    max_obs_bytes: int = 4096
    """Length of the numeric ``"observation"`` byte array."""
    instruction: str = DEFAULT_INSTRUCTION
    """The reasoner's instruction, shown above the question."""
    answer_from_chain: bool = True
    """When the final step states no answer the extractor can find (no box, no "the answer is", no
    ``####``, no number; see :mod:`rsim_env.checkers.answer`), check the whole chain of thought
    instead, so that an answer worked out earlier still counts. ``False``: only the final step."""
    rewards: RewardConfig = field(default_factory=RewardConfig)
    """Weights of the default reward terms."""

    def __post_init__(self) -> None:
        for name in ("max_steps", "max_tokens", "max_step_chars", "max_obs_bytes"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}.")
        if self.split not in ("train", "test", "all"):
            raise ConfigError(f"split must be 'train', 'test' or 'all', got {self.split!r}.")
        if isinstance(self.rewards, Mapping):
            fields = [f.name for f in dataclasses.fields(RewardConfig)]
            unknown = sorted(set(self.rewards) - set(fields))
            if unknown:
                raise ConfigError(f"Unknown reward weight(s) {unknown}; RewardConfig has {fields}.")
            object.__setattr__(self, "rewards", RewardConfig(**self.rewards))
        if not isinstance(self.rewards, RewardConfig):
            raise ConfigError(f"rewards must be a RewardConfig or a mapping of its fields, got {self.rewards!r}.")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> EnvConfig:
        """Build from keywords, naming the valid ones when a keyword is unknown."""
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - valid)
        if unknown:
            raise ConfigError(f"Unknown env option(s) {unknown}. Valid options: {sorted(valid)}.")
        return cls(**kwargs)


@dataclass
class _Episode:
    """Mutable state of the current episode."""

    task: Task
    strategies: list[int] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    tokens: int = 0
    planner_text: str = ""
    reasoner_text: str = ""
    ended_by: EndReason | None = None
    record: EpisodeRecord | None = None


class raw_env(AECEnv):
    """The rSIM two-agent environment; see the module docstring. Use :func:`env` for the wrapped one."""

    metadata = {"render_modes": ["ansi", "human"], "name": "rsim_v0", "is_parallelizable": False}

    def __init__(
        self,
        suite: str | TaskSuite = "sim",
        *,
        strategies: StrategySet | str | Path | None = None,
        render_mode: str | None = None,
        reward_fn: RewardFn | None = None,
        token_counter: Callable[[str], int] | None = None,
        suite_kwargs: Mapping[str, Any] | None = None,
        **config: Any,
    ) -> None:
        super().__init__()
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}.")
        self.config = EnvConfig.from_kwargs(**config)
        if isinstance(suite, TaskSuite):
            self.suite = suite
        elif isinstance(suite, str):
            self.suite = make_suite(suite, **dict(suite_kwargs or {}))
        else:
            raise ConfigError(f"suite must be a registered suite name or a TaskSuite, got {type(suite).__name__}.")
        self.tasks = self.suite.split(self.config.split)
        if strategies is None:
            strategies = StrategySet.default()
        elif not isinstance(strategies, StrategySet):
            strategies = StrategySet.load(strategies)
        self.strategies = strategies
        self.render_mode = render_mode
        self.reward_fn = reward_fn
        self.token_counter = token_counter or count_tokens

        self.possible_agents = [PLANNER, REASONER]
        n = len(strategies)
        text_space = UnicodeText(self._max_text_chars())
        byte_space = spaces.Box(0, 255, (self.config.max_obs_bytes,), np.uint8)
        self.observation_spaces = {
            PLANNER: spaces.Dict({"observation": byte_space, "text": text_space,
                                  "action_mask": spaces.Box(0, 1, (n,), np.int8)}),
            REASONER: spaces.Dict({"observation": byte_space, "text": text_space}),
        }
        self.action_spaces = {
            PLANNER: spaces.Discrete(n),
            REASONER: UnicodeText(self.config.max_step_chars),
        }
        self._names = strategies.names
        self._injections = [f"[strategy: {s.name}] {s.prompt}\n" for s in strategies]
        self._full_mask = np.ones(n, np.int8)
        self._terminate_mask = np.zeros(n, np.int8)
        self._terminate_mask[strategies.termination_index] = 1
        self._done_mask = np.zeros(n, np.int8)
        self._rng = np.random.default_rng()
        self._episode: _Episode | None = None
        self._obs_cache: dict[str, dict[str, Any]] = {}

    def _max_text_chars(self) -> int:
        """An upper bound on the observation text length, for the ``Text`` space."""
        longest_prompt = max(len(t.prompt) for t in self.suite.split("all"))
        longest_strategy = max(len(s.prompt) + len(s.name) for s in self.strategies)
        per_step = self.config.max_step_chars + longest_strategy + 64
        return len(self.config.instruction) + longest_prompt + 64 + self.config.max_steps * per_step

    # -- PettingZoo API ---------------------------------------------------------------------------
    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        """Start an episode on a task drawn from the configured split.

        ``options={"task": Task}`` or ``{"task_index": i}`` plays a specific task instead (used by
        evaluation to sweep a split in order).
        """
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        task = self._choose_task(options or {})
        self.agents = list(self.possible_agents)
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self._episode = _Episode(task=task)
        self._episode.planner_text = f"Question: {task.prompt}\n\nSteps so far:\n"
        self._episode.reasoner_text = reasoner_header(self.config.instruction, task.prompt)
        self._set_infos()
        self.agent_selection = PLANNER
        self._obs_cache = {}

    def _choose_task(self, options: Mapping[str, Any]) -> Task:
        if "task" in options:
            task = options["task"]
            if not isinstance(task, Task):
                raise ConfigError(f"options['task'] must be a Task, got {type(task).__name__}.")
            return task
        if "task_index" in options:
            index = options["task_index"]
            if not isinstance(index, (int, np.integer)) or not 0 <= index < len(self.tasks):
                raise ConfigError(f"options['task_index'] must be in [0, {len(self.tasks)}), got {index!r}.")
            return self.tasks[int(index)]
        return self.tasks[int(self._rng.integers(len(self.tasks)))]

    def observe(self, agent: str) -> dict[str, Any]:
        if agent not in self._obs_cache:
            episode = self._require_episode()
            text = episode.planner_text if agent == PLANNER else episode.reasoner_text
            obs = {"observation": self._encode(text), "text": text}
            if agent == PLANNER:
                obs["action_mask"] = self._planner_mask().copy()
            self._obs_cache[agent] = obs
        return self._obs_cache[agent]

    def _encode(self, text: str) -> np.ndarray:
        data = text.encode("utf-8")[-self.config.max_obs_bytes:]
        out = np.zeros(self.config.max_obs_bytes, np.uint8)
        out[: len(data)] = np.frombuffer(data, np.uint8)
        return out

    def _planner_mask(self) -> np.ndarray:
        episode = self._require_episode()
        if episode.ended_by is not None:
            return self._done_mask
        if len(episode.steps) >= self.config.max_steps - 1:
            return self._terminate_mask
        return self._full_mask

    def action_mask(self) -> np.ndarray:
        """The planner's current legal strategies (a copy)."""
        return self._planner_mask().copy()

    def step(self, action: Any) -> None:
        """Apply the current agent's action; see the module docstring for the rules.

        Raises:
            ActionTypeError: the planner got a non-integer, or the reasoner a non-string.
            IllegalActionError: a strategy outside the set or masked out, or a too-long step.
            EpisodeOverError: a non-``None`` action after the episode ended.
        The env's state is unchanged when any of these is raised.
        """
        agent = self.agent_selection
        if not self.agents:
            raise EpisodeOverError("The episode is over and every agent has been removed; call reset().")
        if self.terminations[agent] or self.truncations[agent]:
            if action is not None:
                raise EpisodeOverError(
                    f"The episode has ended; {agent!r} must step with None (or call reset()), got {action!r}."
                )
            self._was_dead_step(action)
            return
        self._cumulative_rewards[agent] = 0.0
        if agent == PLANNER:
            self._planner_step(action)
        else:
            self._reasoner_step(action)
        self._obs_cache = {}
        if self.render_mode == "human":
            self.render()

    def _planner_step(self, action: Any) -> None:
        if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)) and not (
            isinstance(action, np.ndarray) and action.shape == () and np.issubdtype(action.dtype, np.integer)
        ):
            raise ActionTypeError(
                f"The planner's action must be an integer strategy index, got {type(action).__name__} {action!r}."
            )
        index = int(action)
        n = len(self.strategies)
        if not 0 <= index < n:
            raise IllegalActionError(f"Strategy index {index} is out of range: the set has {n} strategies (0..{n - 1}).")
        mask = self._planner_mask()
        if not mask[index]:
            legal = [self.strategies[i].name for i in np.flatnonzero(mask)]
            raise IllegalActionError(
                f"Strategy {self.strategies[index].name!r} is masked out at step {len(self._episode.steps) + 1}; "
                f"legal now: {legal}."
            )
        episode = self._require_episode()
        episode.strategies.append(index)
        episode.reasoner_text += self._injections[index]
        self._set_infos()
        self._clear_rewards()
        self.agent_selection = REASONER

    def _reasoner_step(self, action: Any) -> None:
        if not isinstance(action, str):
            raise ActionTypeError(f"The reasoner's action must be a str (the next step), got {type(action).__name__}.")
        if len(action) > self.config.max_step_chars:
            raise IllegalActionError(
                f"The step has {len(action)} characters, more than max_step_chars={self.config.max_step_chars}; "
                "shorten it or raise max_step_chars."
            )
        episode = self._require_episode()
        strategy = self.strategies[episode.strategies[-1]]
        step = action.strip()
        episode.steps.append(step)
        episode.tokens += self.token_counter(action)
        episode.planner_text += f"Step {len(episode.steps)} [{strategy.name}]: {step}\n"
        # The step stays verbatim in the reasoner's context (only a blank line is added after it),
        # so each prompt extends the previous prompt plus the generated text: backends then reuse
        # their KV cache, and the tokens trained on are the tokens the model produced.
        trailing_newlines = len(action) - len(action.rstrip("\n"))
        episode.reasoner_text += action + "\n" * max(0, 2 - trailing_newlines)
        if strategy.terminates:
            self._end(episode, "termination")
        elif self.config.end_on_answer and has_final_answer(action):
            self._end(episode, "answer")
        elif episode.tokens > self.config.max_tokens:
            self._end(episode, "truncated")
        else:
            self._clear_rewards()
            self._set_infos()
            self.agent_selection = PLANNER

    def _answer_text(self, episode: _Episode) -> str:
        """What the checker reads: the final step, or the whole chain when that step states no answer."""
        final = episode.steps[-1]
        if self.config.answer_from_chain and extract_answer(final) is None:
            return "\n\n".join(episode.steps)
        return final

    def _end(self, episode: _Episode, ended_by: EndReason) -> None:
        episode.ended_by = ended_by
        if ended_by == "truncated":
            check = CheckResult(False, None, "truncated: token budget exceeded before a final answer")
        else:
            check = self.suite.checker.check(self._answer_text(episode), episode.task)
        episode.record = EpisodeRecord(
            task=episode.task,
            strategies=tuple(self.strategies[i].name for i in episode.strategies),
            steps=tuple(episode.steps),
            ended_by=ended_by,
            check=check,
            tokens=episode.tokens,
        )
        rewards = (self.reward_fn or self._default_reward_fn)(episode.record)
        missing = {PLANNER, REASONER} - set(rewards)
        if missing:
            raise ConfigError(f"reward_fn must return rewards for both agents; missing {sorted(missing)}.")
        self.rewards = {a: float(rewards[a]) for a in self.agents}
        if ended_by == "truncated":
            self.truncations = {a: True for a in self.agents}
        else:
            self.terminations = {a: True for a in self.agents}
        self._accumulate_rewards()
        self._set_infos()
        self.agent_selection = PLANNER

    def _default_reward_fn(self, record: EpisodeRecord) -> Mapping[str, float]:
        return default_rewards(record, self.config.rewards)

    def _clear_rewards(self) -> None:
        for a in self.rewards:
            self.rewards[a] = 0.0

    def _set_infos(self) -> None:
        info = self._info()
        self.infos = {a: dict(info, strategies=list(info["strategies"])) for a in self.agents}

    def _info(self) -> dict[str, Any]:
        episode = self._require_episode()
        info: dict[str, Any] = {
            "task_id": episode.task.id,
            "step": len(episode.steps),
            "strategies": [self._names[i] for i in episode.strategies],
            "tokens": episode.tokens,
        }
        record = episode.record
        if record is not None:
            info.update(
                answer=record.check.answer,
                correct=record.check.correct,
                reason=record.check.reason,
                check=dict(record.check.details),
                ended_by=record.ended_by,
            )
        return info

    def _require_episode(self) -> _Episode:
        if self._episode is None:
            raise EpisodeOverError("The environment has not been reset; call reset() first.")
        return self._episode

    # -- extras -----------------------------------------------------------------------------------
    @property
    def task(self) -> Task:
        """The current episode's task."""
        return self._require_episode().task

    @property
    def steps(self) -> tuple[str, ...]:
        """The reasoner's steps so far in the current episode."""
        return tuple(self._require_episode().steps)

    @property
    def episode_record(self) -> EpisodeRecord | None:
        """The finished episode's record (``None`` while the episode runs)."""
        return self._require_episode().record

    def render(self) -> str | None:
        if self.render_mode is None:
            return None
        text = self._render_text()
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def _render_text(self) -> str:
        if self._episode is None:
            return "(not reset)"
        episode = self._episode
        lines = [f"Question: {episode.task.prompt}"]
        for i, (s, step) in enumerate(zip(episode.strategies, episode.steps), 1):
            lines.append(f"Step {i} [{self.strategies[s].name}]: {step}")
        if len(episode.strategies) > len(episode.steps):
            lines.append(f"Step {len(episode.strategies)} [{self.strategies[episode.strategies[-1]].name}]: ...")
        if episode.record is not None:
            verdict = "correct" if episode.record.correct else f"incorrect ({episode.record.check.reason})"
            lines.append(f"Final answer: {episode.record.check.answer} ({verdict}); ended by {episode.ended_by}")
        return "\n".join(lines)

    def close(self) -> None:
        pass


class OrderEnforcing(wrappers.OrderEnforcingWrapper):
    """PettingZoo's order enforcement, except that a step after every agent has been removed raises
    :class:`EpisodeOverError` instead of logging a warning: a silently dropped action hides bugs in
    rollout code."""

    def step(self, action: Any) -> None:
        if self._has_reset and not self.agents:
            raise EpisodeOverError("The episode is over and every agent has been removed; call reset().")
        super().step(action)


def env(suite: str | TaskSuite = "sim", **kwargs: Any) -> AECEnv:
    """The rSIM environment wrapped in PettingZoo's order-enforcing wrapper (see :class:`raw_env`)."""
    return OrderEnforcing(raw_env(suite, **kwargs))
