"""Every bad input raises a specific exception and leaves the env usable."""

import numpy as np
import pytest

import rsim_env
from rsim_env.errors import (
    ActionTypeError, ConfigError, EpisodeOverError, IllegalActionError, RSIMError, StrategySetError,
    UnknownEnvError, UnknownStrategyError, UnknownSuiteError,
)
from rsim_env.sim import SimulatedReasoner
from tests.conftest import play_episode

TERMINATE = 8
CONTINUE = 7


def snapshot(env):
    return (env.agent_selection, env.observe("planner")["text"], env.observe("reasoner")["text"],
            dict(env.infos["planner"]), env.action_mask().tolist())


def assert_still_works(env):
    """The env finishes a normal episode after the error."""
    reasoner = SimulatedReasoner(seed=0)
    info = play_episode(env, lambda obs: CONTINUE if obs["action_mask"][CONTINUE] else TERMINATE, reasoner.act)
    assert info["ended_by"] == "termination"


@pytest.fixture
def env():
    e = rsim_env.make("rsim/Sim-v0", max_steps=4)
    e.reset(seed=0)
    return e


@pytest.mark.parametrize("action", ["verification", 3.0, None, [1], np.array([1, 2]), True])
def test_planner_wrong_type(env, action):
    before = snapshot(env)
    with pytest.raises((ActionTypeError, EpisodeOverError)) as err:
        env.step(action)
    assert isinstance(err.value, RSIMError)
    assert snapshot(env) == before
    assert_still_works(env)


def test_planner_numpy_integer_is_accepted(env):
    env.step(np.int64(CONTINUE))
    assert env.agent_selection == "reasoner"


@pytest.mark.parametrize("action", [-1, 9, 100])
def test_planner_out_of_range(env, action):
    before = snapshot(env)
    with pytest.raises(IllegalActionError, match="out of range"):
        env.step(action)
    assert snapshot(env) == before
    assert_still_works(env)


def test_masked_action_at_step_cap(env):
    reasoner = SimulatedReasoner(seed=0)
    for _ in range(3):  # max_steps=4: the 4th decision may only terminate
        env.step(CONTINUE)
        env.step(reasoner.act(env.observe("reasoner")["text"]))
    assert env.action_mask().tolist() == [0] * 8 + [1]
    before = snapshot(env)
    with pytest.raises(IllegalActionError, match="masked out.*termination"):
        env.step(CONTINUE)
    assert snapshot(env) == before
    env.step(TERMINATE)
    env.step(reasoner.act(env.observe("reasoner")["text"]))
    assert env.terminations["planner"] and env.infos["planner"]["ended_by"] == "termination"


@pytest.mark.parametrize("action", [7, b"bytes", None, ["step"]])
def test_reasoner_wrong_type(env, action):
    env.step(CONTINUE)
    before = snapshot(env)
    with pytest.raises((ActionTypeError, EpisodeOverError)):
        env.step(action)
    assert snapshot(env) == before
    env.step("A step.")
    assert env.agent_selection == "planner"


def test_reasoner_step_too_long(env):
    env.step(CONTINUE)
    before = snapshot(env)
    with pytest.raises(IllegalActionError, match="max_step_chars"):
        env.step("x" * 9000)
    assert snapshot(env) == before


def test_action_after_the_end(env):
    env.step(TERMINATE)
    env.step("The answer is \\boxed{3}.")
    assert env.terminations["planner"]
    with pytest.raises(EpisodeOverError, match="must step with None"):
        env.step(CONTINUE)
    env.step(None)
    env.step(None)
    assert env.agents == []
    with pytest.raises(EpisodeOverError, match="reset"):
        env.step(CONTINUE)
    env.reset(seed=1)
    assert_still_works(env)


def test_unknown_suite_strategy_env_and_option():
    with pytest.raises(UnknownSuiteError, match="Registered suites"):
        rsim_env.env(suite="no_such_suite")
    with pytest.raises(UnknownEnvError, match="Registered"):
        rsim_env.make("rsim/NoSuch-v0")
    with pytest.raises(UnknownEnvError, match="Did you mean 'rsim/Sim-v0'"):
        rsim_env.make("rsim/Sim-v1")
    with pytest.raises(ConfigError, match="Valid options"):
        rsim_env.make("rsim/Sim-v0", max_stepz=3)
    with pytest.raises(ConfigError, match="positive integer"):
        rsim_env.make("rsim/Sim-v0", max_steps=0)
    with pytest.raises(StrategySetError, match="does not exist"):
        rsim_env.make("rsim/Sim-v0", strategies="missing.yaml")
    with pytest.raises(UnknownStrategyError):
        rsim_env.StrategySet.default()["verify"]
    with pytest.raises(ConfigError, match="render_mode"):
        rsim_env.make("rsim/Sim-v0", render_mode="rgb_array")
    # the registry still works after all of that
    e = rsim_env.make("rsim/Sim-v0")
    e.reset(seed=0)
    assert_still_works(e)


def test_step_before_reset_is_refused():
    e = rsim_env.make("rsim/Sim-v0")
    with pytest.raises(Exception, match="reset"):
        e.step(0)


def test_bad_reset_options(env):
    with pytest.raises(ConfigError, match="task_index"):
        env.reset(options={"task_index": 10**6})
    env.reset(options={"task_index": 0})
    assert env.unwrapped.task == env.unwrapped.tasks[0]
