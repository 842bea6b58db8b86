"""Planners: baselines follow their rules and the masks; the LLM planner's distribution, gradients and saves;
Stable-Baselines3 models drive the two-agent env."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

import rsim_env
from agents.planners.base import (PlannerLoadError, PlannerObservationError, StrategyMismatchError, count_steps,
                                  load_planner)
from agents.planners.baselines import (FixedPlanner, NoStrategyPlanner, RandomPlanner, RoundRobinPlanner,
                                       UCBPlanner, UnknownPlannerError, make_planner)
from rsim_env.errors import UnknownStrategyError
from rsim_env.sim import SimulatedReasoner
from tests.conftest import play_episode

torch.set_num_threads(2)

STRATEGIES = rsim_env.StrategySet.default()
N = len(STRATEGIES)
TERM = STRATEGIES.termination_index
CONT = STRATEGIES.index("continuation")
VERIFY = STRATEGIES.index("verification")


def episode_observations(max_steps: int = 3, seed: int = 0) -> list[dict]:
    """Every planner observation of one Sim-v0 episode played with continuation (the last is at the cap)."""
    env = rsim_env.make("rsim/Sim-v0", max_steps=max_steps)
    seen: list[dict] = []

    def planner(obs):
        seen.append(copy.deepcopy(obs))
        return CONT if obs["action_mask"][CONT] else TERM

    env.reset(seed=seed)
    play_episode(env, planner, SimulatedReasoner(STRATEGIES, seed=seed).act)
    return seen


def masked(obs: dict, legal: list[int]) -> dict:
    mask = np.zeros(N, np.int8)
    mask[legal] = 1
    return {**obs, "action_mask": mask}


def play(planner, max_steps: int = 10, seed: int = 0) -> list[int]:
    """Strategies a planner chose in one full AEC episode (the env raises on any illegal choice)."""
    env = rsim_env.make("rsim/Sim-v0", max_steps=max_steps)
    env.reset(seed=seed)
    info = play_episode(env, lambda obs: int(planner.act([obs]).actions[0]),
                        SimulatedReasoner(STRATEGIES, seed=seed).act)
    return [STRATEGIES.index(name) for name in info["strategies"]]


OBS = episode_observations(max_steps=3)
START, CAP = OBS[0], OBS[-1]


# -- baselines ------------------------------------------------------------------------------------------
BASELINES = {
    "random": lambda: RandomPlanner(STRATEGIES, seed=0),
    "fixed": lambda: FixedPlanner(STRATEGIES, "verification"),
    "none": lambda: NoStrategyPlanner(STRATEGIES),
    "round-robin": lambda: RoundRobinPlanner(STRATEGIES),
    "ucb": lambda: UCBPlanner(STRATEGIES, seed=0),
}


@pytest.mark.parametrize("name", BASELINES)
def test_baselines_respect_masks_and_the_cap(name):
    planner = BASELINES[name]()
    assert [o["action_mask"].sum() for o in OBS] == [N, N, 1]  # the episode really reaches the cap
    rng = np.random.default_rng(1)
    subsets = [sorted(rng.choice(N, size=rng.integers(1, N), replace=False).tolist()) for _ in range(40)]
    batch = [masked(OBS[i % 2], legal) for i, legal in enumerate(subsets)] + [CAP]
    for greedy in (False, True):
        out = planner.act(batch, greedy=greedy)
        assert out.actions.shape == out.logprobs.shape == out.entropy.shape == (len(batch),)
        assert out.actions.dtype == np.int64
        assert all(a in legal for a, legal in zip(out.actions[:-1], subsets))
        assert out.actions[-1] == TERM
        assert np.all(out.logprobs <= 0) and np.all(out.entropy >= 0)
    assert play(planner, max_steps=4)[-1] == TERM


def test_planners_refuse_observations_without_a_legal_action():
    with pytest.raises(PlannerObservationError, match="no strategy"):
        RandomPlanner(STRATEGIES).act([masked(START, [])])
    with pytest.raises(PlannerObservationError, match="same strategy set"):
        RandomPlanner(STRATEGIES).act([{**START, "action_mask": np.ones(N + 1)}])


def test_fixed_none_and_round_robin_sequences():
    assert play(FixedPlanner(STRATEGIES, "verification"), max_steps=4) == [VERIFY, VERIFY, VERIFY, TERM]
    assert play(NoStrategyPlanner(STRATEGIES), max_steps=4) == [CONT, CONT, CONT, TERM]
    assert play(RoundRobinPlanner(STRATEGIES), max_steps=10) == [0, 1, 2, 3, 4, 5, 6, 7, 0, TERM]
    # a masked choice: fixed falls back to termination, round-robin moves on along its cycle
    assert FixedPlanner(STRATEGIES, "verification").act([masked(START, [0, TERM])]).actions[0] == TERM
    assert RoundRobinPlanner(STRATEGIES).act([masked(START, [2, 5, TERM])]).actions[0] == 2
    assert RoundRobinPlanner(STRATEGIES).act([masked(OBS[1], [0, TERM])]).actions[0] == 0


def test_no_strategy_planner_needs_continuation():
    small = rsim_env.StrategySet([{"name": "think", "prompt": "Think."},
                                  {"name": "stop", "prompt": "Answer.", "terminates": True}])
    with pytest.raises(UnknownStrategyError, match="FixedPlanner"):
        NoStrategyPlanner(small)


def test_count_steps_reads_the_env_text():
    assert [count_steps(o["text"]) for o in OBS] == [0, 1, 2]
    tricky = "Question: q\n\nSteps so far:\nStep 1 [continuation]: see\nStep 7 [x]: quoted\n"
    assert count_steps(tricky) == 1


def test_random_planner_is_seeded_and_uniform_over_legal():
    batch = [masked(START, [1, 4, 6])] * 30
    a, b = RandomPlanner(STRATEGIES, seed=3), RandomPlanner(STRATEGIES, seed=3)
    first = a.act(batch).actions
    assert np.array_equal(first, b.act(batch).actions)
    assert not np.array_equal(first, RandomPlanner(STRATEGIES, seed=4).act(batch).actions)
    a.reset(3)
    assert np.array_equal(a.act(batch).actions, first)
    assert set(first) == {1, 4, 6}
    out = a.act(batch[:1])
    assert out.logprobs[0] == pytest.approx(-math.log(3)) and out.entropy[0] == pytest.approx(math.log(3))


def after(first: int) -> dict:
    """The second decision's observation after ``first``, with every strategy legal."""
    text = START["text"] + f"Step 1 [{STRATEGIES[first].name}]: done\n"
    return {"text": text, "action_mask": np.ones(N, np.int8)}


def test_ucb_finds_the_best_strategy_sequence():
    """A toy two-decision bandit with known mean returns: decomposition, then termination, is best."""
    best_first, best_second = STRATEGIES.index("decomposition"), TERM
    rng = np.random.default_rng(0)

    def mean_return(first, second):
        return 0.2 + 0.5 * (first == best_first) + 0.3 * (second == best_second)

    planner = UCBPlanner(STRATEGIES, seed=0)
    for _ in range(400):
        first = int(planner.act([START]).actions[0])
        second = int(planner.act([after(first)]).actions[0])
        planner.update([[first, second]], [mean_return(first, second) + rng.normal(0, 0.1)])
    assert planner.act([START], greedy=True).actions[0] == best_first
    assert planner.act([after(best_first)], greedy=True).actions[0] == best_second
    assert planner.counts[()][best_first] > 0.5 * planner.counts[()].sum()
    assert planner.means((best_first,))[best_second] == pytest.approx(1.0, abs=0.05)
    # deterministic given the seed and the same feedback
    twin, replay = UCBPlanner(STRATEGIES, seed=0), UCBPlanner(STRATEGIES, seed=0)
    for returns in ([0.1], [0.9], [0.4]):
        choice = twin.act([START]).actions
        assert np.array_equal(choice, replay.act([START]).actions)
        twin.update([choice.tolist()], returns)
        replay.update([choice.tolist()], returns)


def test_ucb_explores_every_legal_arm_first():
    planner = UCBPlanner(STRATEGIES, seed=0)
    seen = []
    for _ in range(4):
        action = int(planner.act([masked(START, [0, 3, 5, TERM])]).actions[0])
        seen.append(action)
        planner.update([[action]], [0.0])
    assert sorted(seen) == [0, 3, 5, TERM]


def test_make_planner_names():
    assert isinstance(make_planner("random", STRATEGIES), RandomPlanner)
    assert make_planner("fixed:verification", STRATEGIES).index == VERIFY
    assert isinstance(make_planner("none", STRATEGIES, device="cpu"), NoStrategyPlanner)
    assert isinstance(make_planner("round-robin", STRATEGIES), RoundRobinPlanner)
    assert make_planner("ucb", STRATEGIES, c=2.0).c == 2.0
    with pytest.raises(UnknownStrategyError, match="verification"):
        make_planner("fixed:verify", STRATEGIES)
    with pytest.raises(UnknownPlannerError, match="round-robin"):
        make_planner("roundrobin", STRATEGIES)


def test_loading_a_folder_that_is_no_planner(tmp_path):
    with pytest.raises(PlannerLoadError, match="planner.json"):
        load_planner(tmp_path)
    with pytest.raises(PlannerLoadError, match="planner.json"):
        make_planner(str(tmp_path), STRATEGIES)


# -- the LLM planner --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    from agents.models import resolve_model

    return resolve_model("tiny-random")


def llm(tiny, **kwargs):
    from agents.planners.llm import LLMPlanner

    model, tokenizer = tiny
    return LLMPlanner((copy.deepcopy(model), tokenizer), STRATEGIES, base_model="tiny-random", **kwargs)


def randomise_head(planner, seed=0):
    """A trained-looking linear head (zero at initialisation: uniform, and no gradient into the model)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        planner.head.weight.copy_(torch.randn(planner.head.weight.shape, generator=generator))
    return planner


def test_llm_distribution_is_masked_and_greedy_is_its_argmax(tiny):
    planner = llm(tiny)
    batch = [START, masked(OBS[1], [0, 2, 7]), CAP]
    probs = planner.probabilities(batch)
    assert np.allclose(probs.sum(1), 1.0, atol=1e-6)
    assert np.all(probs[1, [1, 3, 4, 5, 6, 8]] == 0) and np.all(probs[1, [0, 2, 7]] > 0)
    assert probs[2, TERM] == pytest.approx(1.0)
    greedy = planner.act(batch, greedy=True)
    assert np.array_equal(greedy.actions, probs.argmax(1))
    assert np.allclose(greedy.logprobs, np.log(probs[np.arange(3), greedy.actions]), atol=1e-5)
    entropy = -(probs * np.log(np.where(probs > 0, probs, 1))).sum(1)
    assert np.allclose(greedy.entropy, entropy, atol=1e-5)
    sampled = planner.act([masked(START, [0, 2, 7])] * 20)
    assert set(sampled.actions) <= {0, 2, 7}


def test_llm_labels_are_single_tokens_read_after_the_prompt(tiny):
    planner = llm(tiny)
    assert planner.chat and planner.labels == [str(i) for i in range(1, N + 1)]
    prompt = planner.prompt(START)
    assert prompt.index("1. self_reflection: ") < prompt.index(START["text"].strip()) < prompt.index(
        "Next strategy number:")
    ids = planner.tokenizer(prompt + "3", add_special_tokens=False)["input_ids"]
    assert ids[-1] == planner.label_ids[2]
    plain = llm(tiny, prompt_format="plain")
    assert not plain.prompt(START).startswith("<|im_start|>")
    many = rsim_env.StrategySet([{"name": f"s{i}", "prompt": f"Do {i}."} for i in range(10)]
                                + [{"name": "stop", "prompt": "Answer.", "terminates": True}])
    from agents.planners.llm import LLMPlanner

    lettered = LLMPlanner(tiny, many)
    assert lettered.labels[:3] == ["A", "B", "C"] and len(set(lettered.label_ids)) == 11
    assert "K. stop: Answer." in lettered.prompt(START)


@pytest.mark.parametrize("head", ["labels", "linear"])
def test_llm_logprobs_and_entropy_match_act_and_carry_gradients(tiny, head):
    planner = llm(tiny, head=head)
    if head == "linear":
        assert np.allclose(planner.probabilities([START]), 1 / N)  # zero head: uniform start
        randomise_head(planner)
    batch = [START, OBS[1], masked(START, [1, 3, 8]), CAP]
    out = planner.act(batch)
    logp, entropy = planner.logprobs_and_entropy(batch, out.actions)
    assert np.allclose(logp.detach().numpy(), out.logprobs, atol=1e-5)
    assert np.allclose(entropy.detach().numpy(), out.entropy, atol=1e-5)
    (logp.sum() - entropy.sum()).backward()
    layer = planner.model.model.layers[0].self_attn.q_proj.weight
    assert layer.grad is not None and layer.grad.abs().sum() > 0
    if head == "linear":
        assert planner.head.weight.grad.abs().sum() > 0
    params = planner.trainable_parameters()
    assert any(p is layer for p in params) and all(p.requires_grad for p in params)
    value = planner.value(batch)
    assert value.shape == (4,) and value.requires_grad


def test_llm_batch_of_mixed_lengths_equals_one_at_a_time(tiny):
    planner = randomise_head(llm(tiny, head="linear"))
    batch = [START, OBS[1], CAP, masked(OBS[1], [2, 6])]
    lengths = {len(planner.tokenizer(planner.prompt(o))["input_ids"]) for o in batch}
    assert len(lengths) > 1
    together = planner.probabilities(batch)
    alone = np.concatenate([planner.probabilities([o]) for o in batch])
    assert np.allclose(together, alone, atol=1e-5)
    labels = llm(tiny)
    assert np.allclose(labels.probabilities(batch), np.concatenate([labels.probabilities([o]) for o in batch]),
                       atol=1e-5)
    # the shared prefix cache changes nothing: one plain forward pass over the whole prompt agrees
    ids = labels._prefix_ids + labels.tokenizer(labels._suffix(START), add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = labels.model(input_ids=torch.tensor([ids])).logits[0, -1, labels.label_ids]
    assert np.allclose(labels.probabilities([START])[0], torch.softmax(logits, -1).numpy(), atol=1e-5)


def test_llm_sampling_is_seeded(tiny):
    planner = llm(tiny, temperature=3.0)
    batch = [START] * 16
    planner.reset(7)
    first = planner.act(batch).actions
    planner.reset(7)
    assert np.array_equal(planner.act(batch).actions, first)
    assert len(set(first)) > 1


def test_llm_save_load_round_trip(tiny, tmp_path):
    from agents.planners.llm import LLMPlanner

    planner = randomise_head(llm(tiny, head="linear", temperature=0.7))
    with torch.no_grad():
        planner.value_head.bias.fill_(0.25)
    batch = [START, OBS[1], masked(START, [0, 4])]
    planner.save(tmp_path / "p")
    planner.save(tmp_path / "p")  # replacing a saved planner leaves nothing else behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]
    assert (tmp_path / "p" / "model" / "model.safetensors").is_file()
    loaded = LLMPlanner.load(tmp_path / "p", STRATEGIES)
    assert loaded.temperature == 0.7 and loaded.head_kind == "linear"
    assert np.array_equal(loaded.probabilities(batch), planner.probabilities(batch))
    with torch.no_grad():
        assert torch.equal(loaded.value(batch), planner.value(batch))
    via_factory = make_planner(str(tmp_path / "p"), STRATEGIES)
    assert np.array_equal(via_factory.act(batch, greedy=True).actions, planner.act(batch, greedy=True).actions)


def test_llm_load_refuses_another_strategy_set(tiny, tmp_path):
    llm(tiny).save(tmp_path / "p")
    other = rsim_env.StrategySet([{"name": "think", "prompt": "Think."},
                                  {"name": "stop", "prompt": "Answer.", "terminates": True}])
    with pytest.raises(StrategyMismatchError) as err:
        load_planner(tmp_path / "p", other)
    message = str(err.value)
    assert "self_reflection" in message and "'think', 'stop'" in message and "train a planner" in message
    reworded = rsim_env.StrategySet.from_dict(
        {"strategies": [{**s, "prompt": s["prompt"] + "!"} for s in STRATEGIES.to_dict()["strategies"]]})
    with pytest.raises(StrategyMismatchError, match="different prompt texts"):
        make_planner(str(tmp_path / "p"), reworded)


def test_llm_lora_trains_only_adapters_and_saves_them(tiny, tmp_path):
    from agents.planners.llm import LLMPlanner

    planner = llm(tiny, lora_r=4)
    assert planner.lora
    trainable = {name for name, p in planner.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name or name.startswith("value_head.") for name in trainable)
    assert any("q_proj" in name for name in trainable) and any("o_proj" in name for name in trainable)
    assert {id(p) for p in planner.trainable_parameters()} == {
        id(p) for p in planner.parameters() if p.requires_grad}
    with torch.no_grad():  # adapters as after some training (B starts at zero)
        for name, p in planner.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    batch = [START, OBS[1]]
    logp, _ = planner.logprobs_and_entropy(batch, [0, 1])
    logp.sum().backward()
    assert all(p.grad is None for n, p in planner.named_parameters() if not p.requires_grad)
    planner.save(tmp_path / "lora")
    assert not (tmp_path / "lora" / "model").exists()
    assert (tmp_path / "lora" / "adapter" / "adapter_model.safetensors").is_file()
    loaded = LLMPlanner.load(tmp_path / "lora", STRATEGIES)
    assert loaded.lora and np.allclose(loaded.probabilities(batch), planner.probabilities(batch), atol=1e-6)


# -- Stable-Baselines3 ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def maskable_ppo():
    from sb3_contrib import MaskablePPO

    from rsim_env.wrappers import PlannerEnv

    env = PlannerEnv("rsim/Sim-v0", max_steps=6)
    model = MaskablePPO("MlpPolicy", env, n_steps=128, batch_size=64, n_epochs=2, seed=0, device="cpu")
    model.learn(256)
    return model


def test_sb3_planner_plays_the_aec_env_legally(maskable_ppo, tmp_path):
    from agents.planners.sb3 import SB3Planner

    planner = SB3Planner(maskable_ppo, STRATEGIES, max_steps=6)
    for seed in range(3):
        strategies = play(planner, max_steps=6, seed=seed)
        assert strategies[-1] == TERM and len(strategies) <= 6
    observations = episode_observations(max_steps=6)
    greedy = planner.act(observations, greedy=True)
    masks = np.stack([o["action_mask"] for o in observations]).astype(bool)
    predicted, _ = maskable_ppo.predict(planner.encode(observations), action_masks=masks, deterministic=True)
    assert np.array_equal(greedy.actions, predicted)
    sampled = planner.act(observations)
    assert np.all(sampled.logprobs[:-1] < 0) and sampled.logprobs[-1] == 0 and sampled.actions[-1] == TERM
    planner.save(tmp_path / "sb3")
    loaded = make_planner(str(tmp_path / "sb3"), STRATEGIES)
    assert np.array_equal(loaded.act(observations, greedy=True).actions, greedy.actions)
    with pytest.raises(StrategyMismatchError):
        load_planner(tmp_path / "sb3", rsim_env.StrategySet.from_dict(
            {"strategies": list(reversed(STRATEGIES.to_dict()["strategies"]))}))
