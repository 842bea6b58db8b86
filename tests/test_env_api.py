"""PettingZoo's own conformance tests on every registered id."""

import warnings

import pytest
from pettingzoo.test import api_test, render_test, seed_test

import rsim_env

# Short steps keep random-text episodes (and their checker calls) cheap.
FAST = {"max_step_chars": 200}


@pytest.fixture(autouse=True)
def _quiet_pettingzoo_advice():
    # api_test warns that agents are not named like "player_0" and spaces are not Box/Discrete;
    # rsim's names and Dict/Text spaces are deliberate (DESIGN §3).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


@pytest.mark.parametrize("env_id", rsim_env.list_envs())
def test_api(env_id):
    api_test(rsim_env.make(env_id, **FAST), num_cycles=300)


@pytest.mark.parametrize("env_id", rsim_env.list_envs())
def test_seed(env_id):
    seed_test(lambda: rsim_env.make(env_id, **FAST), num_cycles=100)


@pytest.mark.parametrize("env_id", rsim_env.list_envs())
def test_render(env_id):
    render_test(lambda render_mode=None: rsim_env.make(env_id, render_mode=render_mode, **FAST))


def test_list_envs_has_the_builtin_suites():
    ids = rsim_env.list_envs()
    for expected in ("rsim/Sim-v0", "rsim/Arithmetic-v0", "rsim/ChainSum-v0", "rsim/GSMSymbolic-v0",
                     "rsim/Fractions-v0", "rsim/GCD-v0", "rsim/LCM-v0", "rsim/CHAMP-v0", "rsim/HumanEval-v0"):
        assert expected in ids
