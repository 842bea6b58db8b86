"""Use your own strategy set: the planner's action space follows it.

    python examples/custom_strategies.py
"""

import tempfile
from pathlib import Path

import rsim_env

strategies = rsim_env.StrategySet([
    {"name": "continuation", "prompt": "Continue with the next step."},
    {"name": "double_check", "prompt": "Double-check the last calculation digit by digit."},
    {"name": "answer", "prompt": "Give the final answer now as \\boxed{answer}.", "terminates": True},
])
path = Path(tempfile.mkdtemp()) / "my_strategies.yaml"
strategies.save(path)  # a plain YAML file you can edit

env = rsim_env.make("rsim/Arithmetic-v0", strategies=str(path))
env.reset(seed=0)
print("planner actions:", env.action_space("planner"))            # Discrete(3)
env.step(strategies.index("double_check"))
print(env.observe("reasoner")["text"])                             # ends with the injected prompt
