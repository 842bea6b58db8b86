"""Episode rules: injection, masks, endings, rewards, info, seeding, rendering."""

import numpy as np
import pytest

import rsim_env
from rsim_env.env.rewards import RewardConfig, count_repeats
from rsim_env.sim import SimulatedReasoner
from rsim_env.strategies import StrategySet
from tests.conftest import play_episode

S = StrategySet.default()
TERMINATE, CONTINUE, VERIFY = S.index("termination"), S.index("continuation"), S.index("verification")


def make(**kwargs):
    env = rsim_env.make("rsim/Sim-v0", **kwargs)
    env.reset(seed=0)
    return env


def test_planner_moves_first_and_strategy_is_injected():
    env = make()
    assert env.agent_selection == "planner"
    planner_text = env.observe("planner")["text"]
    assert planner_text.startswith("Question: Add the numbers")
    env.step(VERIFY)
    assert env.agent_selection == "reasoner"
    reasoner_text = env.observe("reasoner")["text"]
    assert reasoner_text.endswith(f"[strategy: verification] {S['verification'].prompt}\n")
    assert env.unwrapped.task.prompt in reasoner_text
    env.step("Checked it.")
    assert "Step 1 [verification]: Checked it." in env.observe("planner")["text"]
    assert env.agent_selection == "planner"


def test_reasoner_prompt_grows_by_appending():
    # Backends reuse the KV cache only if each prompt extends the previous prompt plus the step.
    env = make()
    env.step(CONTINUE)
    before = env.observe("reasoner")["text"]
    env.step("First step.")
    env.step(VERIFY)
    after = env.observe("reasoner")["text"]
    assert after.startswith(before + "First step.")


def test_numeric_observation_is_the_texts_utf8_bytes():
    env = make(max_obs_bytes=64)
    obs = env.observe("planner")
    data = obs["text"].encode()[-64:]
    assert obs["observation"].dtype == np.uint8 and obs["observation"].shape == (64,)
    assert bytes(obs["observation"][: len(data)]) == data


def test_termination_ends_with_checker_rewards():
    env = make()
    task = env.unwrapped.task
    env.step(TERMINATE)
    env.step(f"The answer is \\boxed{{{task.answer}}}.")
    assert env.terminations == {"planner": True, "reasoner": True}
    info = env.infos["planner"]
    assert info["correct"] is True and info["answer"] == task.answer and info["ended_by"] == "termination"
    assert env.rewards["reasoner"] == pytest.approx(1.0)
    assert env.rewards["planner"] == pytest.approx(1.0 + 0.1)
    _, reward, *_ = env.last()
    assert reward == pytest.approx(1.1)


def test_wrong_answer_gets_no_accuracy_reward():
    env = make()
    env.step(TERMINATE)
    env.step("The answer is \\boxed{-1}.")
    assert env.infos["reasoner"]["correct"] is False
    assert env.rewards == {"planner": pytest.approx(0.1), "reasoner": 0.0}


def test_repetition_penalty_and_weights():
    weights = RewardConfig(accuracy=2.0, terminal=0.5, repetition_penalty=0.25)
    env = make(rewards=weights)
    for strategy in (VERIFY, VERIFY, VERIFY, CONTINUE, CONTINUE):
        env.step(strategy)
        env.step("Some step.")
    env.step(TERMINATE)
    env.step("The answer is \\boxed{-1}.")
    assert env.rewards["planner"] == pytest.approx(0.5 - 2 * 0.25)  # continuation repeats are exempt
    assert count_repeats(["a", "a", "b", "a", "a"], exempt=()) == 2


def test_rewards_accept_a_mapping():
    env = make(rewards={"terminal": 0.0})
    env.step(TERMINATE)
    env.step("\\boxed{-1}")
    assert env.rewards["planner"] == 0.0


def test_user_reward_function_sees_the_record():
    seen = []

    def reward_fn(record):
        seen.append(record)
        return {"planner": len(record.strategies), "reasoner": -1.0}

    env = make(reward_fn=reward_fn)
    env.step(VERIFY)
    env.step("x")
    env.step(TERMINATE)
    env.step("\\boxed{1}")
    assert env.rewards == {"planner": 2.0, "reasoner": -1.0}
    assert seen[0].strategies == ("verification", "termination") and seen[0].steps == ("x", "\\boxed{1}")


def test_step_cap_forces_termination():
    env = make(max_steps=3)
    reasoner = SimulatedReasoner(seed=0)
    masks = []
    info = play_episode(env, lambda obs: masks.append(obs["action_mask"].copy()) or
                        (CONTINUE if obs["action_mask"][CONTINUE] else TERMINATE), reasoner.act)
    assert [m.sum() for m in masks] == [9, 9, 1]
    assert info["strategies"] == ["continuation", "continuation", "termination"]


def test_end_on_answer():
    env = make(end_on_answer=True)
    env.step(CONTINUE)
    env.step("So the answer is 5. \\boxed{5}")
    assert env.terminations["planner"] and env.infos["planner"]["ended_by"] == "answer"
    env2 = make(end_on_answer=False)
    env2.step(CONTINUE)
    env2.step("So the answer is 5. \\boxed{5}")
    assert not env2.terminations["planner"]


def test_token_budget_truncates_without_answer():
    env = make(max_tokens=10)
    env.step(CONTINUE)
    env.step("one two three four five six seven eight nine ten eleven \\boxed{5}")
    assert env.truncations == {"planner": True, "reasoner": True}
    assert not any(env.terminations.values())
    info = env.infos["planner"]
    assert info["ended_by"] == "truncated" and info["correct"] is False and info["tokens"] == 16  # 11 words + \ boxed { 5 }


def test_custom_token_counter():
    env = make(max_tokens=3, token_counter=len)
    env.step(CONTINUE)
    env.step("abcd")
    assert env.truncations["planner"]


def test_info_carries_debugging_fields():
    env = make()
    env.step(VERIFY)
    env.step("Nothing to verify yet.")
    info = env.infos["planner"]
    assert info["strategies"] == ["verification"] and info["step"] == 1 and info["tokens"] == 5
    assert info["task_id"] == env.unwrapped.task.id


def test_seeding_is_exact():
    def trajectory(seed):
        env = rsim_env.make("rsim/Sim-v0")
        env.reset(seed=seed)
        reasoner = SimulatedReasoner(seed=seed)
        rng = np.random.default_rng(seed)
        texts = []
        for agent in env.agent_iter():
            obs, _, term, trunc, _ = env.last()
            texts.append(obs["text"])
            if term or trunc:
                env.step(None)
            elif agent == "planner":
                env.step(int(rng.choice(np.flatnonzero(obs["action_mask"]))))
            else:
                env.step(reasoner.act(obs["text"]))
        return texts

    assert trajectory(3) == trajectory(3)
    assert trajectory(3) != trajectory(4)


def test_splits_are_respected():
    env = rsim_env.make("rsim/Sim-v0", split="test")
    test_ids = {t.id for t in env.unwrapped.suite.test}
    for seed in range(20):
        env.reset(seed=seed)
        assert env.unwrapped.task.id in test_ids


def test_render_modes(capsys):
    env = make(render_mode="ansi")
    env.step(VERIFY)
    env.step("Checked.")
    text = env.render()
    assert "Step 1 [verification]: Checked." in text
    human = make(render_mode="human")
    human.step(VERIFY)
    assert "[verification]" in capsys.readouterr().out
    assert human.render() is None


@pytest.mark.parametrize("from_chain", [True, False])
def test_a_final_step_without_an_answer_is_checked_against_the_whole_chain(from_chain):
    env = make(answer_from_chain=from_chain)
    task = env.unwrapped.task
    env.step(CONTINUE)
    env.step(f"So the sum is \\boxed{{{task.answer}}}.")
    env.step(TERMINATE)
    env.step("That is all.")  # states no answer of its own
    record = env.unwrapped.episode_record
    assert record.correct is from_chain
    if not from_chain:
        assert record.check.answer is None
