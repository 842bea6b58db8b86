"""Step the two-agent environment by hand: a random planner and the simulated reasoner.

    python examples/play_random_planner.py

Shows the PettingZoo AEC loop, the action mask, and the chain of thought with strategy tags.
"""

import rsim_env
from rsim_env.sim import SimulatedReasoner

env = rsim_env.make("rsim/Sim-v0", render_mode="ansi")
env.reset(seed=0)
reasoner = SimulatedReasoner(seed=0)

for agent in env.agent_iter():
    obs, reward, terminated, truncated, info = env.last()
    if terminated or truncated:
        action = None
    elif agent == "planner":
        action = env.action_space(agent).sample(obs["action_mask"])  # a legal strategy index
    else:
        action = reasoner.act(obs["text"])  # the next step, as text
    env.step(action)

print(env.render())
print(f"correct: {info['correct']}, strategies: {info['strategies']}")
