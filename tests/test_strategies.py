import json

import pytest

import rsim_env
from rsim_env.errors import StrategySetError, UnknownStrategyError
from rsim_env.strategies import StrategySet

PAPER_ORDER = ["self_reflection", "decomposition", "deep_thinking", "verification", "summarization",
               "prioritization", "sub_planning", "continuation", "termination"]


def test_default_set_is_the_papers_nine_in_order():
    s = StrategySet.default()
    assert list(s.names) == PAPER_ORDER
    assert s.termination_index == 8 and s["termination"].terminates
    assert all(st.prompt.strip() for st in s)
    assert [st.index for st in s] == list(range(9))


def test_round_trip_yaml_and_json(tmp_path):
    s = StrategySet.default()
    for name in ("set.yaml", "set.json"):
        s.save(tmp_path / name)
        assert StrategySet.load(tmp_path / name) == s
    assert StrategySet.load(tmp_path / "set.json").fingerprint() == s.fingerprint()


@pytest.mark.parametrize("strategies, message", [
    ([{"name": "a", "prompt": "x", "terminates": True}, {"name": "a", "prompt": "y"}], "unique"),
    ([{"name": "a", "prompt": "x"}, {"name": "b", "prompt": "y"}], "Exactly one"),
    ([{"name": "a", "prompt": "x", "terminates": True}, {"name": "b", "prompt": "y", "terminates": True}], "Exactly one"),
    ([{"name": "a", "prompt": "  ", "terminates": True}, {"name": "b", "prompt": "y"}], "empty prompt"),
    ([{"name": "Bad Name", "prompt": "x", "terminates": True}, {"name": "b", "prompt": "y"}], "invalid name"),
    ([{"name": "a", "prompt": "x", "terminates": True}], "at least two"),
    ([{"name": "a", "prompt": "x", "terminates": True, "colour": "red"}, {"name": "b", "prompt": "y"}], "unknown fields"),
])
def test_invalid_sets_are_refused_with_a_reason(strategies, message):
    with pytest.raises(StrategySetError, match=message):
        StrategySet(strategies)


def test_bad_files_are_refused(tmp_path):
    (tmp_path / "broken.yaml").write_text("strategies: [ {name: a")
    with pytest.raises(StrategySetError, match="Could not parse"):
        StrategySet.load(tmp_path / "broken.yaml")
    (tmp_path / "nolist.json").write_text(json.dumps({"other": []}))
    with pytest.raises(StrategySetError, match="'strategies'"):
        StrategySet.load(tmp_path / "nolist.json")
    with pytest.raises(StrategySetError, match="does not exist"):
        StrategySet.load(tmp_path / "missing.yaml")


def test_unknown_strategy_name():
    with pytest.raises(UnknownStrategyError, match="verification"):
        StrategySet.default().index("verify")


def test_env_action_space_follows_a_custom_set(tmp_path):
    custom = StrategySet([
        {"name": "continuation", "prompt": "Go on."},
        {"name": "check", "prompt": "Check the last step."},
        {"name": "answer", "prompt": "Give the final answer as \\boxed{}.", "terminates": True},
    ])
    custom.save(tmp_path / "three.yaml")
    env = rsim_env.make("rsim/Sim-v0", strategies=str(tmp_path / "three.yaml"))
    env.reset(seed=0)
    assert env.action_space("planner").n == 3
    assert env.observation_space("planner")["action_mask"].shape == (3,)
    obs, *_ = env.last()
    assert obs["action_mask"].tolist() == [1, 1, 1]
    env.step(1)
    assert "[strategy: check] Check the last step." in env.observe("reasoner")["text"]
