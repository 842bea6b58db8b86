"""Rollouts: many rSIM episodes in lockstep, with batched planner and reasoner calls.

Every round advances each running episode by one planner decision and one reasoner step: all
planner observations go to the planner in one call, then all reasoner prompts go to the reasoner
backend in one call. The episodes run in real ``rsim_env`` environments (one per slot), so strategy
injection, masks, the step cap, the token budget, the checker and the rewards are exactly the env's.
An episode that ends frees its slot for the next one.

The output is one :class:`Trajectory` per episode with, per decision, the planner's action,
log-probability and entropy, and the reasoner's step text, token ids and log-probabilities; the
terminal rewards; and :meth:`Trajectory.reasoner_sequence`, the reasoner's whole context with a loss
mask that is 1 only on tokens the reasoner generated (prompts and injected strategy text are never
trained as reasoner output).

Under greedy policies the batched rollout and stepping the PettingZoo env one agent at a time
give identical trajectories (``tests/agents/test_rollout.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np
from tqdm.auto import tqdm

import rsim_env
from agents.backends.base import EpisodeKey, GenerationConfig, StepOutput
from agents.planners.base import Planner
from rsim_env.env.core import PLANNER, REASONER, raw_env, reasoner_header
from rsim_env.tasks.task import Split, Task

log = logging.getLogger(__name__)


class Reasoner(Protocol):
    """What a rollout needs from a reasoner: a batched step and episode bookkeeping."""

    def generate_step(self, prompts: Mapping[EpisodeKey, str],
                      config: GenerationConfig | None = None) -> dict[EpisodeKey, StepOutput]: ...

    def release(self, key: EpisodeKey) -> None: ...


class TextReasoner:
    """Adapts a text function (e.g. ``SimulatedReasoner.act``) to the :class:`Reasoner` interface.

    It has no tokens: its steps carry empty token ids and log-probabilities.
    """

    def __init__(self, act: Callable[[str], str]) -> None:
        self.act = act

    def generate_step(self, prompts: Mapping[EpisodeKey, str],
                      config: GenerationConfig | None = None) -> dict[EpisodeKey, StepOutput]:
        return {key: StepOutput(text=self.act(prompt), token_ids=[], logprobs=[], stop_reason="delimiter",
                                prompt_token_ids=[]) for key, prompt in prompts.items()}

    def release(self, key: EpisodeKey) -> None:
        pass


class ReasonerPrompter:
    """Turns the env's reasoner text into the model's prompt.

    With a chat tokenizer, the env's header (instruction and question, :func:`reasoner_header`)
    becomes the user turn and the chain of thought continues as the assistant's turn, so that each
    prompt extends the previous one (the backend's KV reuse depends on it). Without a chat
    template, or for text reasoners, the env's text is the prompt.
    """

    def __init__(self, tokenizer: Any = None) -> None:
        self.tokenizer = tokenizer if getattr(tokenizer, "chat_template", None) else None
        self._cache: dict[str, str] = {}

    def __call__(self, text: str, header: str) -> str:
        if self.tokenizer is None:
            return text
        if not text.startswith(header):
            raise ValueError("The reasoner text does not start with its header; was the env's instruction changed?")
        if header not in self._cache:
            self._cache[header] = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": header.strip()}], add_generation_prompt=True, tokenize=False)
        return self._cache[header] + text[len(header):]


@dataclass
class Decision:
    """One planner decision and the reasoner step written under it."""

    strategy: int
    planner_text: str
    action_mask: np.ndarray
    planner_logprob: float
    planner_entropy: float
    step: StepOutput


@dataclass
class Trajectory:
    """One finished episode."""

    episode: int
    task: Task
    group: int
    decisions: list[Decision]
    rewards: dict[str, float]
    correct: bool
    answer: str | None
    ended_by: str
    tokens: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def strategies(self) -> list[int]:
        return [d.strategy for d in self.decisions]

    @property
    def generated_tokens(self) -> int:
        return sum(len(d.step.token_ids) for d in self.decisions)

    def reasoner_sequence(self, eos_token_ids: frozenset[int] = frozenset()) -> tuple[list[int], list[int], list[float]]:
        """The reasoner's whole context as ``(token_ids, loss_mask, old_logprobs)``.

        ``token_ids`` is the last step's prompt tokens plus its generated tokens; ``loss_mask`` is 1
        exactly on the tokens the reasoner generated in any step and 0 on the prompt, the injected
        strategies and everything else; ``old_logprobs`` holds the sampling log-probabilities there
        (0 elsewhere). A step that ended with an end-of-sequence token mid-episode keeps that token
        out of the context, so it is not part of the sequence either.

        Raises:
            ValueError: if an earlier step's tokens are not where the final context has them
                (the prompts did not extend each other, e.g. a custom prompter rewrote history).
        """
        if not self.decisions or not self.decisions[-1].step.prompt_token_ids:
            return [], [], []
        last = self.decisions[-1].step
        ids = list(last.prompt_token_ids) + list(last.token_ids)
        mask = [0] * len(ids)
        logprobs = [0.0] * len(ids)
        for i, decision in enumerate(self.decisions):
            step = decision.step
            tokens, lps = list(step.token_ids), list(step.logprobs)
            if i < len(self.decisions) - 1 and tokens and (step.stop_reason == "eos" or tokens[-1] in eos_token_ids):
                tokens, lps = tokens[:-1], lps[:-1]
            start = len(step.prompt_token_ids)
            if ids[start:start + len(tokens)] != tokens:
                raise ValueError(f"Step {i + 1} of episode {self.episode} is not a prefix of the final context.")
            mask[start:start + len(tokens)] = [1] * len(tokens)
            logprobs[start:start + len(tokens)] = lps
        return ids, mask, logprobs


@dataclass(frozen=True)
class RolloutConfig:
    """How episodes are scheduled and sampled."""

    batch_size: int = 8
    """Episodes advanced in lockstep (the LLM batch size)."""
    group_size: int = 1
    """Consecutive episodes that share a task (GRPO's ``num_generations``)."""
    greedy: bool = False
    """Whether the planner picks its most likely strategy instead of sampling."""
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    """The reasoner's sampling and stopping rules (``temperature=0`` for greedy)."""
    split: Split = "train"
    """Which split tasks are drawn from when ``task_indices`` is not given."""
    seed: int = 0
    """Seeds task draws, the planner and the reasoner's sampling."""

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.group_size < 1:
            raise ValueError("batch_size and group_size must be positive.")


def rollout(env: str | Callable[[], raw_env], planner: Planner, reasoner: Reasoner, *, episodes: int,
            config: RolloutConfig | None = None, task_indices: Sequence[int] | None = None,
            prompter: ReasonerPrompter | None = None, progress: bool = False,
            env_kwargs: Mapping[str, Any] | None = None) -> list[Trajectory]:
    """Run ``episodes`` episodes and return their trajectories, in episode order.

    Args:
        env: a registered id or a factory returning a ``rsim_env.raw_env``.
        planner: picks strategies for a batch of planner observations.
        reasoner: a backend (``TransformersBackend``, ...) or a :class:`TextReasoner`.
        episodes: how many episodes to run.
        config: scheduling and sampling (:class:`RolloutConfig`).
        task_indices: play these tasks of the env's split in order (episode ``i`` plays
            ``task_indices[i // group_size]``); by default tasks are drawn with ``config.seed``.
        prompter: maps env text to model prompts (default: the backend tokenizer's chat template).
        progress: show a progress bar over episodes.
        env_kwargs: options for ``rsim_env.make`` when ``env`` is an id.
    """
    config = config or RolloutConfig()
    make_env = (lambda: rsim_env.make(env, wrapped=False, **dict(env_kwargs or {}))) if isinstance(env, str) else env
    prompter = prompter or ReasonerPrompter(getattr(reasoner, "tokenizer", None))
    slots = [make_env() for _ in range(min(config.batch_size, episodes))]
    n_tasks = len(slots[0].tasks)
    rng = np.random.default_rng(config.seed)
    groups = -(-episodes // config.group_size)
    if task_indices is not None:
        if len(task_indices) < groups:
            raise ValueError(f"{episodes} episodes in groups of {config.group_size} need {groups} task indices, "
                             f"got {len(task_indices)}.")
        group_tasks = [int(i) for i in task_indices[:groups]]
    else:
        group_tasks = [int(i) for i in rng.integers(n_tasks, size=groups)]
    planner.reset(config.seed)

    results: dict[int, Trajectory] = {}
    running: dict[int, tuple[raw_env, list[Decision]]] = {}
    next_episode = 0
    bar = tqdm(total=episodes, desc="episodes", unit="ep", disable=not progress, leave=False)

    def start(slot: raw_env) -> None:
        nonlocal next_episode
        episode = next_episode
        next_episode += 1
        slot.reset(seed=config.seed * 1_000_003 + episode,
                   options={"task_index": group_tasks[episode // config.group_size]})
        running[episode] = (slot, [])

    for slot in slots:
        start(slot)
    while running:
        order = sorted(running)
        observations = [running[e][0].observe(PLANNER) for e in order]
        out = planner.act(observations, greedy=config.greedy)
        prompts = {}
        for i, episode in enumerate(order):
            slot = running[episode][0]
            slot.step(int(out.actions[i]))
            prompts[episode] = prompter(slot.observe(REASONER)["text"],
                                        reasoner_header(slot.config.instruction, slot.task.prompt))
        steps = reasoner.generate_step(prompts, config.generation)
        for i, episode in enumerate(order):
            slot, decisions = running[episode]
            decisions.append(Decision(
                strategy=int(out.actions[i]), planner_text=observations[i]["text"],
                action_mask=observations[i]["action_mask"].copy(), planner_logprob=float(out.logprobs[i]),
                planner_entropy=float(out.entropy[i]), step=steps[episode]))
            slot.step(steps[episode].text)
            if slot.terminations[REASONER] or slot.truncations[REASONER]:
                results[episode] = _finish(episode, slot, decisions, config.group_size)
                reasoner.release(episode)
                planner.update([results[episode].strategies], [results[episode].rewards[PLANNER]])
                del running[episode]
                bar.update(1)
                if next_episode < episodes:
                    start(slot)
    bar.close()
    return [results[e] for e in range(episodes)]


def _finish(episode: int, slot: raw_env, decisions: list[Decision], group_size: int) -> Trajectory:
    record = slot.episode_record
    info = dict(slot.infos[PLANNER])
    return Trajectory(
        episode=episode, task=record.task, group=episode // group_size, decisions=decisions,
        rewards={a: float(slot.rewards[a]) for a in (PLANNER, REASONER)}, correct=record.correct,
        answer=record.check.answer, ended_by=record.ended_by, tokens=record.tokens, info=info,
    )
