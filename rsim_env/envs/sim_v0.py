"""
# Sim

| | |
|---|---|
| Import | `rsim_env.make("rsim/Sim-v0")` |
| Suite | `sim` |
| Actions | planner: Discrete; reasoner: Text |
| Parallel API | No |
| Agents | `agents = ["planner", "reasoner"]` |
| Number of agents | 2 |
| Action values | planner: `Discrete(9)`; reasoner: `UnicodeText(0, 8192)` |
| Observation shape | `observation`: `(4096,)`; `action_mask` (planner): `(9,)` |
| Observation values | `observation`: uint8 [0, 255]; `text`: str; `action_mask`: int8 {0, 1} |
| Default options | `max_steps=10`, `max_tokens=1024` |

Simulated reasoning: add 2-4 numbers, easy or hard, with a simulated reasoner whose strategy effects are known
(see `rsim_env.sim`). The optimal planner's expected return is exact: `rsim_env.sim.expected_return`.
Pair it with `rsim_env.sim.SimulatedReasoner` (or use `rsim_env.wrappers.PlannerEnv`, which does).

## Task

`rsim_env.sim.sim_suite(size=1000, seed=0)`: tasks `Add the numbers 12, 7, 30. (Simulated task; difficulty: hard.)`;
the answer is the sum, checked by `MathChecker`.

## Arguments

Any keyword of `rsim_env.env` (see `rsim_env.env.core`) overrides the defaults above, e.g.
`rsim_env.make("rsim/Sim-v0", max_steps=6, end_on_answer=True, strategies="my_strategies.yaml")`.
A different strategy set changes the planner's `Discrete(n)` and `action_mask` sizes.

## Observation Space, Action Space, Rewards

As documented in `rsim_env.env.core`: the planner reads the question and the tagged steps so far,
the reasoner its full prompt with the injected strategy; terminal rule-based rewards
(R_acc, R_terminal, R_penalty).

## Version History

* v0: initial release.
"""

from rsim_env.registration import env_fns

ID = "rsim/Sim-v0"
SUITE = "sim"
DEFAULTS = {"max_steps": 10, "max_tokens": 1024}

env, raw_env = env_fns(ID)
