"""Tasks, task suites, the suite registry, the built-in math suites and dataset loaders.

Importing this package registers the built-in suites (see :mod:`rsim_env.tasks.math_suites`).
"""

from rsim_env.tasks.loaders import load_gsm8k, load_math, read_records
from rsim_env.tasks.registry import list_suites, make_suite, register_suite
from rsim_env.tasks.task import Task, TaskSuite
from rsim_env.tasks import math_suites  # noqa: F401  (registers the built-in math suites)

__all__ = [
    "Task", "TaskSuite", "register_suite", "make_suite", "list_suites", "load_gsm8k", "load_math",
    "read_records",
]
