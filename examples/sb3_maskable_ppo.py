"""Train Stable-Baselines3's MaskablePPO as the planner on the simulated suite.

    python examples/sb3_maskable_ppo.py          (about a minute on a laptop CPU)

PlannerEnv is a Gymnasium env with the simulated reasoner inside; the optimal planner's expected
return is known exactly, so you can see how close PPO gets.
"""

import numpy as np
from sb3_contrib import MaskablePPO
from stable_baselines3.common.vec_env import DummyVecEnv

import rsim_env
from rsim_env.sim import expected_return
from rsim_env.wrappers import PlannerEnv

MAX_STEPS = 10
venv = DummyVecEnv([lambda i=i: PlannerEnv("rsim/Sim-v0", max_steps=MAX_STEPS) for i in range(8)])
model = MaskablePPO("MlpPolicy", venv, n_steps=256, batch_size=256, n_epochs=4, learning_rate=1e-3,
                    gamma=1.0, ent_coef=0.01, seed=0, policy_kwargs={"net_arch": [64, 64]})
model.learn(100_000, progress_bar=False)

env = PlannerEnv("rsim/Sim-v0", max_steps=MAX_STEPS)
returns = []
for episode in range(500):
    obs, _ = env.reset(seed=10_000 + episode)
    done = False
    while not done:
        action, _ = model.predict(obs, deterministic=True, action_masks=env.action_masks())
        obs, reward, terminated, truncated, _ = env.step(int(action))
        done = terminated or truncated
    returns.append(reward)

suite = rsim_env.make_suite("sim")
print(f"MaskablePPO: {np.mean(returns):.3f}")
print(f"optimal:     {expected_return(suite, max_steps=MAX_STEPS):.3f}")
print(f"random:      {expected_return(suite, max_steps=MAX_STEPS, policy='random'):.3f}")
