"""Every registered env has a module whose docstring table matches the real env."""

import re

import pytest

import rsim_env
from rsim_env.envs import ENV_MODULES


def table(doc: str) -> dict[str, str]:
    rows = {}
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0] and not set(cells[0]) <= {"-"}:
            rows[cells[0]] = cells[1]
    return rows


def test_every_registered_id_has_a_documented_module():
    assert sorted(m.ID for m in ENV_MODULES) == rsim_env.list_envs()


@pytest.mark.parametrize("module", ENV_MODULES, ids=lambda m: m.ID)
def test_docstring_table_matches_the_env(module):
    rows = table(module.__doc__)
    env = module.env()
    env.reset(seed=0)
    planner_action, reasoner_action = env.action_space("planner"), env.action_space("reasoner")
    obs_space = env.observation_space("planner")
    assert rows["Import"] == f'`rsim_env.make("{module.ID}")`'
    assert rows["Suite"] == f"`{env.unwrapped.suite.name}`"
    assert rows["Agents"] == f"`agents = {env.possible_agents!r}`".replace("'", '"')
    assert rows["Number of agents"] == str(len(env.possible_agents))
    assert rows["Action values"] == f"planner: `{planner_action}`; reasoner: `{reasoner_action}`"
    assert rows["Observation shape"] == (f"`observation`: `{obs_space['observation'].shape}`; "
                                         f"`action_mask` (planner): `{obs_space['action_mask'].shape}`")
    defaults = dict(re.findall(r"`(\w+)=(\w+)`", rows["Default options"]))
    assert {k: int(v) for k, v in defaults.items()} == {k: v for k, v in module.DEFAULTS.items() if isinstance(v, int)}
    config = env.unwrapped.config
    assert all(getattr(config, k) == v for k, v in module.DEFAULTS.items())
    assert "## Version History" in module.__doc__
