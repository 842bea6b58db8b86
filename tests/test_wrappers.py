"""Single-agent views: Gymnasium's checker, and SB3 learning on the simulated suite."""

import time

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rsim_env
from rsim_env.errors import ConfigError, IllegalActionError
from rsim_env.sim import expected_return
from rsim_env.wrappers import PlannerEnv, ReasonerEnv

MAX_STEPS = 10


@pytest.mark.parametrize("encoder", ["words", "bytes"])
def test_planner_env_passes_check_env(encoder):
    check_env(PlannerEnv("rsim/Sim-v0", encoder=encoder), skip_render_check=True)


def test_reasoner_env_passes_check_env():
    check_env(ReasonerEnv("rsim/Sim-v0", max_step_chars=64), skip_render_check=True)


def test_planner_env_masks_and_coercion():
    env = PlannerEnv("rsim/Sim-v0", max_steps=2)
    env.reset(seed=0)
    assert env.action_masks().all()
    env.step(7)
    assert env.action_masks().tolist() == [False] * 8 + [True]
    obs, reward, terminated, truncated, info = env.step(7)  # masked: coerced to termination
    assert terminated and info["coerced"] and info["strategies"] == ["continuation", "termination"]
    strict = PlannerEnv("rsim/Sim-v0", max_steps=2, illegal_action="raise")
    strict.reset(seed=0)
    strict.step(7)
    with pytest.raises(IllegalActionError):
        strict.step(7)


def test_planner_env_needs_a_reasoner_outside_the_sim():
    with pytest.raises(ConfigError, match="needs a reasoner"):
        PlannerEnv("rsim/Arithmetic-v0")
    env = PlannerEnv("rsim/Arithmetic-v0", reasoner=lambda text: "The answer is \\boxed{0}.")
    env.reset(seed=0)
    *_, terminated, _, info = env.step(8)
    assert terminated and "correct" in info


def test_reasoner_env_plays_with_a_fixed_planner():
    env = ReasonerEnv("rsim/Sim-v0", max_steps=3)
    obs, _ = env.reset(seed=0)
    assert obs["text"].endswith(f"{rsim_env.StrategySet.default()['continuation'].prompt}\n")
    obs, reward, terminated, *_ = env.step("Step one.")
    obs, reward, terminated, *_ = env.step("Step two.")
    assert "[strategy: termination]" in obs["text"] and not terminated
    task = env.env.task
    *_, reward, terminated, _, info = env.step(f"\\boxed{{{task.answer}}}")
    assert terminated and reward == 1.0 and info["correct"]


def evaluate(model, masked: bool, episodes: int = 600) -> float:
    env = PlannerEnv("rsim/Sim-v0", max_steps=MAX_STEPS)
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=10_000 + episode)
        done, reward = False, 0.0
        while not done:
            kwargs = {"action_masks": env.action_masks()} if masked else {}
            action, _ = model.predict(obs, deterministic=True, **kwargs)
            obs, reward, terminated, truncated, _ = env.step(int(action))
            done = terminated or truncated
        returns.append(reward)
    return float(np.mean(returns))


def random_return(episodes: int = 600) -> float:
    env = PlannerEnv("rsim/Sim-v0", max_steps=MAX_STEPS)
    rng = np.random.default_rng(0)
    returns = []
    for episode in range(episodes):
        env.reset(seed=20_000 + episode)
        done = False
        while not done:
            _, reward, terminated, truncated, _ = env.step(int(rng.choice(np.flatnonzero(env.action_masks()))))
            done = terminated or truncated
        returns.append(reward)
    return float(np.mean(returns))


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["PPO", "MaskablePPO"])
def test_sb3_learns_the_sim_planner(algorithm):
    torch = pytest.importorskip("torch")
    pytest.importorskip("stable_baselines3")
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    torch.set_num_threads(1)

    def make_env(i):
        def build():
            env = PlannerEnv("rsim/Sim-v0", max_steps=MAX_STEPS)
            env.reset(seed=i)
            return env
        return build

    cls = {"PPO": PPO, "MaskablePPO": MaskablePPO}[algorithm]
    model = cls("MlpPolicy", DummyVecEnv([make_env(i) for i in range(8)]), n_steps=256, batch_size=256,
                n_epochs=4, learning_rate=1e-3, ent_coef=0.01, gamma=1.0, seed=0,
                policy_kwargs={"net_arch": [64, 64]})
    start = time.process_time()
    model.learn(100_000)
    cpu_seconds = time.process_time() - start
    learned = evaluate(model, masked=algorithm == "MaskablePPO")
    optimal = expected_return(rsim_env.make_suite("sim"), max_steps=MAX_STEPS)
    random = random_return()
    print(f"{algorithm}: learned {learned:.3f}, optimal {optimal:.3f}, random {random:.3f}, "
          f"{cpu_seconds:.0f} CPU s")
    assert cpu_seconds < 120
    assert learned >= 0.9 * optimal
    assert random < 0.5 * optimal
