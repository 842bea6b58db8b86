"""
# Arithmetic

| | |
|---|---|
| Import | `rsim_env.make("rsim/Arithmetic-v0")` |
| Suite | `arithmetic` |
| Actions | planner: Discrete; reasoner: Text |
| Parallel API | No |
| Agents | `agents = ["planner", "reasoner"]` |
| Number of agents | 2 |
| Action values | planner: `Discrete(9)`; reasoner: `UnicodeText(0, 8192)` |
| Observation shape | `observation`: `(4096,)`; `action_mask` (planner): `(9,)` |
| Observation values | `observation`: uint8 [0, 255]; `text`: str; `action_mask`: int8 {0, 1} |
| Default options | `max_steps=8`, `max_tokens=2048` |

Basic arithmetic expressions from reasoning-gym (`basic_arithmetic`).

## Task

`Calculate 5 - 3 - 6.` -> `-4`; checked by `MathChecker` and reasoning-gym's scorer.

## Arguments

Any keyword of `rsim_env.env` (see `rsim_env.env.core`) overrides the defaults above, e.g.
`rsim_env.make("rsim/Arithmetic-v0", max_steps=6, end_on_answer=True, strategies="my_strategies.yaml")`.
A different strategy set changes the planner's `Discrete(n)` and `action_mask` sizes.

## Observation Space, Action Space, Rewards

As documented in `rsim_env.env.core`: the planner reads the question and the tagged steps so far,
the reasoner its full prompt with the injected strategy; terminal rule-based rewards
(R_acc, R_terminal, R_penalty).

## Version History

* v0: initial release.
"""

from rsim_env.registration import env_fns

ID = "rsim/Arithmetic-v0"
SUITE = "arithmetic"
DEFAULTS = {"max_steps": 8, "max_tokens": 2048}

env, raw_env = env_fns(ID)
