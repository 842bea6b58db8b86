"""rsim_env: the reinforced-strategy-injection environment.

A PettingZoo AEC environment with two agents: a *planner* that picks a reasoning strategy at every
step of a chain of thought, and a *reasoner* that writes the step under the injected strategy.

    import rsim_env
    env = rsim_env.make("rsim/Arithmetic-v0")      # or rsim_env.env(suite="arithmetic")
    env.reset(seed=0)

This package never imports ``agents``: any algorithm can drive the environment.
"""

from rsim_env import sim as _sim  # noqa: F401  (registers the "sim" suite)
from rsim_env import tasks as _tasks  # noqa: F401  (registers the built-in suites)
from rsim_env.checkers.base import Checker, CheckResult
from rsim_env.env.core import EnvConfig, env, raw_env
from rsim_env.env.rewards import EpisodeRecord, RewardConfig
from rsim_env.registration import list_envs, make, register, spec
from rsim_env.strategies import Strategy, StrategySet
from rsim_env.tasks.registry import list_suites, make_suite, register_suite
from rsim_env.tasks.task import Task, TaskSuite
from rsim_env import envs as _envs  # noqa: F401,E402  (registers the built-in ids)

__all__ = [
    "CheckResult", "Checker", "EnvConfig", "EpisodeRecord", "RewardConfig", "Strategy", "StrategySet",
    "Task", "TaskSuite", "env", "list_envs", "list_suites", "make", "make_suite", "raw_env", "register",
    "register_suite", "spec",
]
__version__ = "0.1.0"
