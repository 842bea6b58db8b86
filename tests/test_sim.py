"""The simulated reasoner: exact values agree with simulation; strategies matter."""

import numpy as np
import pytest

import rsim_env
from rsim_env.env.rewards import RewardConfig
from rsim_env.sim import (
    SimState, SimulatedReasoner, expected_return, optimal_action, parse_question, parse_state, transitions,
)
from rsim_env.strategies import StrategySet

S = StrategySet.default()
MAX_STEPS = 10


@pytest.fixture(scope="module")
def suite():
    return rsim_env.make_suite("sim")


def fixed_policy(name):
    def policy(state, parts, last, step, difficulty):
        p = np.zeros(len(S))
        p[S.termination_index if step == MAX_STEPS - 1 else S.index(name)] = 1.0
        return p
    return policy


def test_transition_tables_are_distributions():
    for name in S.names:
        for state in (SimState(), SimState(1, True, True), SimState(3, False, False)):
            for difficulty in ("easy", "hard"):
                probs = [p for p, _ in transitions(name, state, difficulty, 3)]
                assert sum(probs) == pytest.approx(1.0) and min(probs) >= 0


def test_optimal_beats_every_fixed_strategy_and_random(suite):
    optimal = expected_return(suite, max_steps=MAX_STEPS)
    random = expected_return(suite, max_steps=MAX_STEPS, policy="random")
    fixed = {name: expected_return(suite, max_steps=MAX_STEPS, policy=fixed_policy(name)) for name in S.names}
    assert random < 0.5 * optimal
    assert max(fixed.values()) < 0.75 * optimal  # no single fixed strategy is close to optimal
    assert optimal > 1.0


def test_optimal_policy_reads_the_state():
    kw = dict(max_steps=MAX_STEPS)
    done = optimal_action(SimState(3, False, True), 3, None, 4, "easy", **kw)
    doubt = optimal_action(SimState(3, True, True), 3, None, 4, "hard", **kw)  # all added, in doubt
    working = optimal_action(SimState(1, False, True), 3, None, 2, "easy", **kw)
    assert S.names[done] == "termination"
    assert S.names[doubt] in ("verification", "self_reflection")
    assert S.names[working] in ("continuation", "deep_thinking")


def play(env, reasoner, choose):
    env.reset()
    total = 0.0
    for agent in env.agent_iter():
        obs, reward, term, trunc, info = env.last()
        if term or trunc:
            total = env.unwrapped.rewards["planner"] if agent == "planner" else total
            env.step(None)
        elif agent == "planner":
            env.step(choose(obs, info))
        else:
            env.step(reasoner.act(obs["text"]))
    return total


def test_simulated_optimal_return_matches_the_exact_value(suite):
    """Monte Carlo through the real env agrees with dynamic programming (4 standard errors)."""
    env = rsim_env.make("rsim/Sim-v0", max_steps=MAX_STEPS)
    env.reset(seed=0)
    reasoner = SimulatedReasoner(seed=1)
    last = {"a": None}

    def choose(obs, info):
        numbers, difficulty = parse_question(obs["text"])
        state = parse_state(obs["text"])
        prev = S.index(info["strategies"][-1]) if info["strategies"] else None
        return optimal_action(state, len(numbers), prev, info["step"], difficulty, max_steps=MAX_STEPS)

    returns = np.array([play(env, reasoner, choose) for _ in range(3000)])
    exact = expected_return(suite, max_steps=MAX_STEPS)
    stderr = returns.std() / np.sqrt(len(returns))
    assert abs(returns.mean() - exact) < 4 * stderr + 1e-3, (returns.mean(), exact)


def test_reward_weights_flow_into_the_exact_value(suite):
    base = expected_return(suite, max_steps=MAX_STEPS)
    higher = expected_return(suite, max_steps=MAX_STEPS, rewards=RewardConfig(terminal=0.5))
    assert higher == pytest.approx(base + 0.4, abs=1e-9)  # the optimum always ends by termination


def test_reasoner_answers_the_running_total_on_termination():
    text = ("Question: Add the numbers 3, 4. (Simulated task; difficulty: easy.)\n\n"
            "Added 3; the running total is 3. [progress=1/2 doubt=no plan=no total=3]\n\n"
            "[strategy: termination] Stop.\n")
    assert SimulatedReasoner(seed=0).act(text) == "The answer is \\boxed{3}."
