"""The leader-follower trainer: schedules, joint updates, loss masks, resume, plug-in planners, learning on Sim."""

import json
from pathlib import Path

import pytest
import torch

import rsim_env
from agents.backends.base import GenerationConfig
from agents.cli import main as rsim
from agents.planners.mlp import MLPPlanner
from agents.training.config import TrainConfig
from agents.training.trainer import LeaderFollowerTrainer, Position, trains
from rsim_env.env.core import PLANNER, REASONER
from rsim_env.errors import ConfigError
from rsim_env.sim import expected_return

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "configs"
TIMING_KEYS = {"seconds_per_update", "tokens_per_second"}


def varied_rewards(record):
    """Rewards that differ between episodes even when no answer is right (tiny-random never is)."""
    text = "".join(record.steps)
    return {PLANNER: float(sum(map(len, record.strategies)) % 5), REASONER: float(sum(map(ord, text)) % 5)}


def tiny_config(tmp_path, **overrides):
    fields = dict(suites=["rsim/Arithmetic-v0"], schedule="joint", planner="llm:tiny-random", reasoner="tiny-random",
                  lora_r=4, updates=1, groups_per_update=2, group_size=2, batch_size=4, max_steps=3,
                  max_new_tokens=8, max_tokens=512, temperature=1.0, planner_lr=1e-2, reasoner_lr=1e-2,
                  eval_every=0, eval_episodes=2, final_eval_episodes=2, baselines=["none"],
                  env_options={"reward_fn": varied_rewards}, out=str(tmp_path / "run"))
    fields.update(overrides)
    return TrainConfig(**fields)


def sim_config(tmp_path, algorithm="grpo", **overrides):
    overrides = {"out": str(tmp_path / algorithm), **overrides}
    return TrainConfig.load(EXAMPLES / f"sim_planner_{algorithm}.yaml", [f"{k}={json.dumps(v)}" for k, v in overrides.items()])


def trainable(module):
    return {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}


def joint_loss(trainer, trajectories, targets):
    """λ L_planner + (1 - λ) L_reasoner on a batch, leaving no gradients behind."""
    lam = trainer.config.joint_lambda
    planner = trainer.planner_loss(trajectories, targets)[0].item()
    reasoner = trainer.reasoner_loss(trajectories, targets)[0]
    for optimizer in trainer.optimizers.values():
        optimizer.zero_grad(set_to_none=True)
    return lam * planner + (1 - lam) * reasoner


def test_schedules_pick_the_learners():
    at = [Position(0, u, u) for u in range(6)]
    assert [trains("alternating", p, 6, 2, 0.5) for p in at] == [{PLANNER}] * 2 + [{REASONER}] * 2 + [{PLANNER}] * 2
    assert [trains("two-stage", p, 6, 1, 0.5) for p in at] == [{PLANNER}] * 3 + [{PLANNER, REASONER}] * 3
    assert trains("joint", at[0], 6, 1, 0.5) == {PLANNER, REASONER}
    assert trains("planner-only", at[3], 6, 1, 0.5) == {PLANNER}
    assert trains("reasoner-only", at[3], 6, 1, 0.5) == {REASONER}


def test_config_yaml_round_trip_and_errors(tmp_path):
    config = TrainConfig.load(EXAMPLES / "sim_planner_ppo.yaml", ["updates=3", "ppo.clip_coef=0.1"])
    assert config.updates == 3 and config.ppo.clip_coef == 0.1 and config.ppo.update_epochs == config.epochs
    path = tmp_path / "config.yaml"
    path.write_text(config.to_yaml())
    assert TrainConfig.load(path) == config
    with pytest.raises(ConfigError, match="Unknown config field"):
        TrainConfig.load(None, ["updatez=3"])
    with pytest.raises(ConfigError, match="key=value"):
        TrainConfig.load(None, ["updates"])
    with pytest.raises(ConfigError, match="schedule"):
        TrainConfig(schedule="sometimes")
    with pytest.raises(ConfigError, match="cannot learn"):
        TrainConfig(reasoner="sim", schedule="joint")
    with pytest.raises(ConfigError, match="Unknown generation_options.*top-level"):
        TrainConfig(generation_options={"max_new_tokens": 5})
    with pytest.raises(ConfigError, match="top_p"):
        TrainConfig(generation_options={"top_p": 0})
    with pytest.raises(ConfigError, match="suite_kwargs are"):  # Sim with the default (chain_sum) env options
        LeaderFollowerTrainer(TrainConfig(suites=["rsim/Sim-v0"], planner="mlp", reasoner="sim",
                                          out=str(tmp_path / "bad")), progress=False)


def test_reward_functions_are_saved_as_import_paths(tmp_path):
    config = TrainConfig(env_options={"reward_fn": varied_rewards})
    path = tmp_path / "config.yaml"
    path.write_text(config.to_yaml())
    assert f"reward_fn: {varied_rewards.__module__}:varied_rewards" in path.read_text()
    assert TrainConfig.load(path).env_options["reward_fn"] is varied_rewards
    with pytest.raises(ConfigError, match="top level of an importable module"):
        TrainConfig(env_options={"reward_fn": lambda record: {}}).to_yaml()
    with pytest.raises(ConfigError, match="cannot import"):
        TrainConfig(env_options={"reward_fn": "rsim_env:no_such_function"})


def test_generation_options_reach_the_rollout(tmp_path):
    config = tiny_config(tmp_path, schedule="reasoner-only", max_steps=1, max_new_tokens=6,
                         generation_options={"delimiter": None, "stop_at_answer": False, "eos_token_ids": []})
    assert config.generation(seed=1, greedy=True).eos_token_ids == ()
    trajectories = LeaderFollowerTrainer(config, progress=False)._rollout("rsim/Arithmetic-v0", 4, seed=3, greedy=False)
    assert [t.generated_tokens for t in trajectories] == [6] * 4  # no stopping rule ends a step early


def test_joint_update_moves_both_agents_and_lowers_the_batch_loss(tmp_path):
    trainer = LeaderFollowerTrainer(tiny_config(tmp_path), progress=False)
    trajectories = trainer._rollout("rsim/Arithmetic-v0", 4, seed=3, greedy=False)
    targets = trainer.targets(trajectories, {PLANNER, REASONER})
    assert any(float(t[f"{REASONER}_advantage"]) != 0 for t in targets)
    before = {PLANNER: trainable(trainer.planner), REASONER: trainable(trainer.reasoner_model)}
    loss_before = joint_loss(trainer, trajectories, targets)
    trainer.optimise(trajectories, targets, {PLANNER, REASONER})
    loss_after = joint_loss(trainer, trajectories, targets)
    for agent, module in ((PLANNER, trainer.planner), (REASONER, trainer.reasoner_model)):
        after = trainable(module)
        assert after, f"{agent} has no trainable parameters"
        assert any(not torch.equal(before[agent][n], after[n]) for n in after), f"{agent} did not change"
    assert loss_after < loss_before


def test_full_fine_tuning_trains_every_weight_of_both_agents(tmp_path):
    trainer = LeaderFollowerTrainer(tiny_config(tmp_path, lora_r=0), progress=False)
    models = {PLANNER: trainer.planner.model, REASONER: trainer.reasoner_model}
    for agent, model in models.items():
        assert not any("lora" in n for n, _ in model.named_parameters()), agent
        assert all(p.requires_grad for p in model.parameters()), agent
    before = {agent: trainable(model) for agent, model in models.items()}
    trainer.update("rsim/Arithmetic-v0", Position(0, 0, 0), {PLANNER, REASONER})
    for agent, model in models.items():
        after = trainable(model)
        changed = [n for n in after if not torch.equal(before[agent][n], after[n])]
        assert any("mlp" in n for n in changed) and any("self_attn" in n for n in changed), agent


@pytest.mark.parametrize("lora_r", [4, 0])
def test_reasoner_kl_reference_starts_equal_to_the_policy(tmp_path, lora_r):
    # LoRA: the reference is the model with adapters off; full fine-tuning: a frozen copy. Before any
    # step both equal the policy, so the first update's KL is zero; the update still moves the reasoner.
    trainer = LeaderFollowerTrainer(tiny_config(tmp_path, schedule="reasoner-only", lora_r=lora_r,
                                                grpo={"beta": 0.04}), progress=False)
    before = trainable(trainer.reasoner_model)
    metrics = trainer.update("rsim/Arithmetic-v0", Position(0, 0, 0), {REASONER})
    assert metrics["kl"] == pytest.approx(0.0, abs=1e-6)
    after = trainable(trainer.reasoner_model)
    assert any(not torch.equal(before[n], after[n]) for n in after)


def test_reasoner_ppo_update_uses_its_value_head(tmp_path):
    trainer = LeaderFollowerTrainer(tiny_config(tmp_path, schedule="reasoner-only", algorithm="ppo"), progress=False)
    head = {n: p.detach().clone() for n, p in trainer.reasoner_value_head.named_parameters()}
    metrics = trainer.update("rsim/Arithmetic-v0", Position(0, 0, 0), {REASONER})
    assert torch.isfinite(torch.tensor(metrics["reasoner_loss"]))
    assert any(not torch.equal(head[n], p) for n, p in trainer.reasoner_value_head.named_parameters())


def test_injected_strategy_tokens_carry_no_loss_weight(tmp_path, monkeypatch):
    trainer = LeaderFollowerTrainer(tiny_config(tmp_path, schedule="reasoner-only"), progress=False)
    trajectories = trainer._rollout("rsim/Arithmetic-v0", 4, seed=5, greedy=False)
    tokenizer = trainer.reasoner.tokenizer
    eos = trainer.reasoner.eos_token_ids(GenerationConfig())
    for trajectory in trajectories:
        ids, mask, _ = trajectory.reasoner_sequence(eos)
        generated = [tokenizer.decode([t]) for t, m in zip(ids, mask) if m]
        context = tokenizer.decode([t for t, m in zip(ids, mask) if not m])
        for decision in trajectory.decisions:  # every injected strategy prompt is in the unweighted part
            assert trainer.strategies[decision.strategy].prompt in context
        assert sum(mask) == sum(len(d.step.token_ids) for d in trajectory.decisions) - sum(
            1 for d in trajectory.decisions[:-1] if d.step.stop_reason == "eos")
        assert len(generated) == sum(mask)

    captured = []
    original = trainer._token_logprobs

    def capture(ids, mask, **kwargs):
        logp, entropy, hidden = original(ids, mask, **kwargs)
        logp.retain_grad()
        captured.append((logp, (mask[:, 1:] == 1)))
        return logp, entropy, hidden

    monkeypatch.setattr(trainer, "_token_logprobs", capture)
    targets = trainer.targets(trajectories, {REASONER})
    trainer.reasoner_loss(trajectories, targets)
    assert captured
    for logp, weighted in captured:
        assert torch.all(logp.grad[~weighted] == 0)
        assert torch.any(logp.grad[weighted] != 0)


def _metrics(run_dir):
    lines = [json.loads(x) for x in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k not in TIMING_KEYS} for line in lines]


def test_resumed_run_reproduces_the_uninterrupted_one(tmp_path):
    overrides = dict(updates=6, eval_every=2, eval_episodes=20, final_eval_episodes=20, groups_per_update=4)
    straight = sim_config(tmp_path / "a", **overrides)
    LeaderFollowerTrainer(straight, progress=False).train()

    killed = sim_config(tmp_path / "b", **overrides)
    trainer = LeaderFollowerTrainer(killed, progress=False)
    original, calls = trainer.update, []

    def dies_during_the_fifth_update(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt("killed")
        return original(*args)

    trainer.update = dies_during_the_fifth_update
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert len(_metrics(killed.out)) < len(_metrics(straight.out))
    with pytest.raises(ConfigError, match="--resume"):
        LeaderFollowerTrainer(killed, progress=False).train()
    LeaderFollowerTrainer(killed, progress=False).train(resume=True)
    assert _metrics(killed.out) == _metrics(straight.out)
    assert json.loads((Path(killed.out) / "final_eval.json").read_text())[0]["planner_reward"] == \
        json.loads((Path(straight.out) / "final_eval.json").read_text())[0]["planner_reward"]


def test_plug_in_planner_steers_another_reasoner_and_refuses_other_strategy_sets(tmp_path, capsys):
    config = sim_config(tmp_path, updates=2, eval_every=0, eval_episodes=10, final_eval_episodes=10)
    LeaderFollowerTrainer(config, progress=False).train()
    exported = Path(config.out) / "planner"
    assert json.loads((exported / "planner.json").read_text())["kind"] == "mlp"

    out = tmp_path / "eval"
    assert rsim(["eval", "--suite", "arithmetic", "--planner", str(exported), "--reasoner", "tiny-random",
                 "--episodes", "4", "--batch-size", "4", "--max-steps", "3", "--max-new-tokens", "6",
                 "--out", str(out), "--quiet"]) == 0
    result = json.loads((out / "results.json").read_text())[0]
    assert result["planner"] == str(exported) and result["reasoner"] == "tiny-random" and result["episodes"] == 4
    assert sum(result["strategy_usage"].values()) >= 4

    other = rsim_env.StrategySet.default().to_dict()["strategies"][::-1]  # same names, other action indices
    MLPPlanner(rsim_env.StrategySet.from_dict(other), max_steps=3).save(tmp_path / "reordered")
    assert rsim(["eval", "--suite", "arithmetic", "--planner", str(tmp_path / "reordered"), "--reasoner",
                 "tiny-random", "--episodes", "2", "--out", str(tmp_path / "refused"), "--quiet"]) == 2
    assert "different order" in capsys.readouterr().err


def test_continual_run_evaluates_every_suite_after_every_stage(tmp_path):
    suites = ["rsim/Arithmetic-v0", "rsim/GCD-v0"]
    config = tiny_config(tmp_path, schedule="planner-only", suites=suites, eval_every=0, baselines=[])
    LeaderFollowerTrainer(config, progress=False).train()
    continual = json.loads((Path(config.out) / "continual.json").read_text())
    assert continual["stages"] == continual["suites"] == suites
    assert all(a is not None for row in continual["accuracy"] for a in row)  # incl. GCD before its stage
    lines = [json.loads(x) for x in (Path(config.out) / "metrics.jsonl").read_text().splitlines()]
    assert [m["suite"] for m in lines if m["kind"] == "train"] == suites
    report = (Path(config.out) / "report.md").read_text()
    assert "## Transfer and forgetting" in report and "†" in report


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["grpo", "ppo"])
def test_planner_only_training_on_sim_reaches_90_percent_of_optimal(tmp_path, algorithm):
    config = sim_config(tmp_path, algorithm, final_eval_episodes=1000, baselines=["random"])
    results = LeaderFollowerTrainer(config, progress=False).train()
    trained, random = results
    optimal = expected_return(rsim_env.make_suite("sim"), split="test", max_steps=config.max_steps)
    seconds = sum(json.loads(x).get("seconds_per_update", 0)
                  for x in (Path(config.out) / "metrics.jsonl").read_text().splitlines())
    print(f"{algorithm}: trained {trained.planner_reward:.3f}, optimal {optimal:.3f}, "
          f"random {random.planner_reward:.3f}, {seconds:.0f} s of updates")
    assert trained.planner_reward >= 0.9 * optimal
    assert seconds < 120
    assert (Path(config.out) / "report.md").exists()
