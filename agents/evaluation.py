"""Evaluation: run a planner with a reasoner over a suite's split and summarise the episodes.

Accuracy comes with a 95% Wilson score interval (well-behaved at 0% and 100% and for small
samples, unlike the normal approximation). Results are written atomically as JSON and as a
Markdown table, so an interrupted evaluation never leaves a half-written results file.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from agents.planners.base import Planner
from agents.rollout import Reasoner, RolloutConfig, Trajectory, rollout
from rsim_env.atomic import write_json_atomic, write_text_atomic
from rsim_env.env.core import PLANNER, REASONER
from rsim_env.registration import make


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion (95% by default)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(values: Sequence[float], z: float = 1.959964) -> tuple[float, float, float]:
    """Mean and normal-approximation 95% interval of ``values``."""
    n = len(values)
    if n == 0:
        return 0.0, 0.0, 0.0
    mean = sum(values) / n
    if n == 1:
        return mean, mean, mean
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = z * sd / math.sqrt(n)
    return mean, mean - half, mean + half


@dataclass
class EvalResult:
    """The summary of one evaluation."""

    env_id: str
    planner: str
    reasoner: str
    split: str
    episodes: int
    accuracy: float
    accuracy_ci: tuple[float, float]
    planner_reward: float
    planner_reward_ci: tuple[float, float]
    reasoner_reward: float
    tokens_per_episode: float
    generated_tokens_per_episode: float
    strategies_per_episode: float
    strategy_usage: dict[str, int]
    ended_by: dict[str, int]
    seconds: float
    seed: int
    per_episode: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarise(trajectories: Sequence[Trajectory], *, env_id: str, planner: str, reasoner: str, split: str,
              strategy_names: Sequence[str], seconds: float, seed: int) -> EvalResult:
    """Aggregate trajectories into an :class:`EvalResult`."""
    n = len(trajectories)
    correct = sum(t.correct for t in trajectories)
    planner_rewards = [t.rewards[PLANNER] for t in trajectories]
    reward_mean, reward_lo, reward_hi = mean_interval(planner_rewards)
    usage = Counter(strategy_names[s] for t in trajectories for s in t.strategies)
    return EvalResult(
        env_id=env_id, planner=planner, reasoner=reasoner, split=split, episodes=n,
        accuracy=correct / n if n else 0.0, accuracy_ci=wilson_interval(correct, n),
        planner_reward=reward_mean, planner_reward_ci=(reward_lo, reward_hi),
        reasoner_reward=sum(t.rewards[REASONER] for t in trajectories) / max(n, 1),
        tokens_per_episode=sum(t.tokens for t in trajectories) / max(n, 1),
        generated_tokens_per_episode=sum(t.generated_tokens for t in trajectories) / max(n, 1),
        strategies_per_episode=sum(len(t.decisions) for t in trajectories) / max(n, 1),
        strategy_usage={name: usage.get(name, 0) for name in strategy_names},
        ended_by=dict(Counter(t.ended_by for t in trajectories)),
        seconds=seconds, seed=seed,
        per_episode=[{"task_id": t.task.id, "correct": t.correct, "answer": t.answer, "reference": t.task.answer,
                      "strategies": [strategy_names[s] for s in t.strategies], "rewards": t.rewards,
                      "ended_by": t.ended_by, "tokens": t.tokens, "generated_tokens": t.generated_tokens}
                     for t in trajectories],
    )


def evaluate(env_id: str, planner: Planner, reasoner: Reasoner, *, episodes: int, planner_name: str,
             reasoner_name: str, config: RolloutConfig | None = None, split: str = "test",
             progress: bool = True, **env_kwargs: Any) -> EvalResult:
    """Play ``episodes`` episodes over ``split`` in order (wrapping around) and summarise them."""
    config = config or RolloutConfig()
    env_kwargs = {"split": split, **env_kwargs}
    n_tasks = len(make(env_id, wrapped=False, **env_kwargs).unwrapped.tasks)
    groups = -(-episodes // config.group_size)
    start = time.perf_counter()
    trajectories = rollout(env_id, planner, reasoner, episodes=episodes, config=config,
                           task_indices=[i % n_tasks for i in range(groups)], progress=progress,
                           env_kwargs=env_kwargs)
    return summarise(trajectories, env_id=env_id, planner=planner_name, reasoner=reasoner_name, split=split,
                     strategy_names=planner.strategies.names, seconds=time.perf_counter() - start,
                     seed=config.seed)


def markdown_table(results: Sequence[EvalResult]) -> str:
    """One row per result: accuracy with its 95% interval, rewards, tokens, strategies."""
    lines = [
        "| env | planner | reasoner | episodes | accuracy (95% CI) | planner reward (95% CI) | "
        "reasoner reward | tokens/ep | strategies/ep | seconds |",
        "|---|---|---|---:|---|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.env_id} | {r.planner} | {r.reasoner} | {r.episodes} | "
            f"{r.accuracy:.1%} ({r.accuracy_ci[0]:.1%} to {r.accuracy_ci[1]:.1%}) | "
            f"{r.planner_reward:.3f} ({r.planner_reward_ci[0]:.3f} to {r.planner_reward_ci[1]:.3f}) | "
            f"{r.reasoner_reward:.3f} | {r.tokens_per_episode:.1f} | {r.strategies_per_episode:.2f} | {r.seconds:.1f} |"
        )
    return "\n".join(lines) + "\n"


def write_results(results: Sequence[EvalResult], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.md`` into ``out_dir`` (atomically)."""
    out = Path(out_dir)
    json_path, md_path = out / "results.json", out / "results.md"
    write_json_atomic(json_path, [r.to_dict() for r in results])
    usage = "\n".join(
        f"- {r.planner}: " + ", ".join(f"{k} {v}" for k, v in r.strategy_usage.items() if v) for r in results)
    write_text_atomic(md_path, "# Evaluation\n\n" + markdown_table(results) + "\n## Strategy usage\n\n" + usage + "\n")
    return json_path, md_path
