"""The built-in environment ids, registered in one place.

Each id has a module here whose docstring documents it (a PettingZoo-style table, the task, the
defaults); ``tests/test_env_docs.py`` checks every table against the real spaces.
"""

from __future__ import annotations

from types import ModuleType

from rsim_env.envs import (
    arithmetic_v0,
    champ_v0,
    chain_sum_v0,
    fractions_v0,
    gcd_v0,
    gsm_symbolic_v0,
    humaneval_v0,
    lcm_v0,
    sim_v0,
)
from rsim_env.registration import register

ENV_MODULES: tuple[ModuleType, ...] = (
    sim_v0, arithmetic_v0, chain_sum_v0, gsm_symbolic_v0, fractions_v0, gcd_v0, lcm_v0, champ_v0,
    humaneval_v0,
)

for _module in ENV_MODULES:
    register(_module.ID, suite=_module.SUITE, description=(_module.__doc__ or "").split("\n\n")[2].strip(),
             **_module.DEFAULTS)
