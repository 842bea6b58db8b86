"""Tasks, task suites, the suite registry, the built-in math suites and dataset loaders.

Importing this package registers the built-in suites (:mod:`rsim_env.tasks.math_suites`,
:mod:`rsim_env.tasks.code_suites`).
"""

from rsim_env.tasks.loaders import load_gsm8k, load_math, read_records
from rsim_env.tasks.registry import list_suites, make_suite, register_suite
from rsim_env.tasks.task import Task, TaskSuite
from rsim_env.tasks import math_suites  # noqa: F401  (registers the built-in math suites)
from rsim_env.tasks import code_suites  # noqa: F401  (registers HumanEval)
from rsim_env.tasks.code_suites import load_code_alpaca, load_mbpp

__all__ = [
    "Task", "TaskSuite", "register_suite", "make_suite", "list_suites", "load_gsm8k", "load_math",
    "read_records", "load_mbpp", "load_code_alpaca",
]
