"""Rollouts: lockstep batching follows the env's rules and matches stepping the AEC env by hand."""

import numpy as np
import pytest

import rsim_env
from agents.backends.base import GenerationConfig
from agents.rollout import ReasonerPrompter, RolloutConfig, TextReasoner, rollout
from rsim_env.env.core import reasoner_header
from rsim_env.sim import SimulatedReasoner

GREEDY = GenerationConfig(max_new_tokens=12, temperature=0.0)


@pytest.fixture(scope="module")
def backend():
    from agents.backends.transformers_backend import TransformersBackend

    return TransformersBackend.from_pretrained("tiny-random")


@pytest.fixture(scope="module")
def strategies():
    return rsim_env.StrategySet.default()


def aec_episode(env_id, planner, backend, task_index, seed, env_kwargs):
    """One episode stepped agent by agent through the wrapped PettingZoo env."""
    env = rsim_env.make(env_id, **env_kwargs)
    env.reset(seed=seed, options={"task_index": task_index})
    raw = env.unwrapped
    prompter = ReasonerPrompter(backend.tokenizer)
    strategies, steps = [], []
    for agent in env.agent_iter():
        obs, _, terminated, truncated, info = env.last()
        if terminated or truncated:
            env.step(None)
        elif agent == "planner":
            action = int(planner.act([obs], greedy=True).actions[0])
            strategies.append(action)
            env.step(action)
        else:
            prompt = prompter(obs["text"], reasoner_header(raw.config.instruction, raw.task.prompt))
            out = backend.generate_step({"aec": prompt}, GREEDY)["aec"]
            steps.append(out.token_ids)
            env.step(out.text)
    backend.release("aec")
    return strategies, steps, info


def test_batched_rollout_equals_aec_stepping(backend, strategies):
    from agents.planners.baselines import RoundRobinPlanner

    kwargs = {"max_steps": 3}
    planner = RoundRobinPlanner(strategies)
    config = RolloutConfig(batch_size=4, greedy=True, generation=GREEDY, seed=5)
    trajectories = rollout("rsim/Arithmetic-v0", planner, backend, episodes=6, config=config,
                           task_indices=[0, 1, 2, 3, 4, 5], env_kwargs=kwargs)
    for t in trajectories:
        planner.reset(5)
        strategies_seen, step_tokens, info = aec_episode("rsim/Arithmetic-v0", planner, backend, t.episode,
                                                         5 * 1_000_003 + t.episode, kwargs)
        assert t.strategies == strategies_seen
        assert [d.step.token_ids for d in t.decisions] == step_tokens
        assert t.correct == info["correct"] and t.ended_by == info["ended_by"]


def test_trajectory_records_and_loss_mask(backend, strategies):
    from agents.planners.baselines import RandomPlanner

    config = RolloutConfig(batch_size=3, generation=GenerationConfig(max_new_tokens=8, temperature=1.0, seed=1),
                           seed=1)
    trajectories = rollout("rsim/Arithmetic-v0", RandomPlanner(strategies, seed=0), backend, episodes=5,
                           config=config, env_kwargs={"max_steps": 3})
    assert [t.episode for t in trajectories] == list(range(5))
    for t in trajectories:
        assert 1 <= len(t.decisions) <= 3
        assert t.ended_by in ("termination", "answer", "truncated")
        assert t.decisions[-1].strategy == strategies.termination_index or t.ended_by != "termination"
        ids, mask, logprobs = t.reasoner_sequence()
        generated = [tok for d in t.decisions for tok in d.step.token_ids]
        assert sum(mask) <= len(generated) and sum(mask) >= len(generated) - len(t.decisions)
        # the injected strategy text is in the context but never under the loss mask
        prompt_text = backend.tokenizer.decode([i for i, m in zip(ids, mask) if m == 0])
        assert "[strategy: " in prompt_text
        masked_text = backend.tokenizer.decode([i for i, m in zip(ids, mask) if m == 1])
        assert "[strategy: " not in masked_text
        assert all(lp <= 0 for lp, m in zip(logprobs, mask) if m)
        assert all(lp == 0 for lp, m in zip(logprobs, mask) if not m)


def test_groups_share_tasks_and_rewards_come_from_the_env(strategies):
    from agents.planners.baselines import RandomPlanner

    reasoner = TextReasoner(SimulatedReasoner(seed=0).act)
    config = RolloutConfig(batch_size=8, group_size=4, seed=3)
    trajectories = rollout("rsim/Sim-v0", RandomPlanner(strategies, seed=1), reasoner, episodes=16, config=config)
    for g in range(4):
        group = [t for t in trajectories if t.group == g]
        assert len(group) == 4 and len({t.task.id for t in group}) == 1
    for t in trajectories:
        expected = 1.0 * t.correct
        assert t.rewards["reasoner"] == pytest.approx(expected)
        assert t.reasoner_sequence() == ([], [], [])


def test_rollout_is_seeded(strategies):
    from agents.planners.baselines import RandomPlanner

    def run(seed):
        reasoner = TextReasoner(SimulatedReasoner(seed=seed).act)
        trajectories = rollout("rsim/Sim-v0", RandomPlanner(strategies, seed=seed), reasoner, episodes=10,
                               config=RolloutConfig(batch_size=4, seed=seed))
        return [(t.task.id, t.strategies, t.rewards["planner"]) for t in trajectories]

    assert run(2) == run(2)
    assert run(2) != run(3)
