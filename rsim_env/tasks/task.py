"""Tasks and task suites.

A :class:`Task` is one problem: a prompt, a reference answer and/or tests, a kind and metadata. A
:class:`TaskSuite` is a named collection of tasks with a deterministic train/test split and the
checker that judges answers to them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from rsim_env.checkers.base import Checker
from rsim_env.errors import ConfigError

TaskKind = Literal["math", "code", "choice", "sim", "text"]
Split = Literal["train", "test", "all"]


@dataclass(frozen=True)
class Task:
    """One problem.

    Attributes:
        id: unique within its suite, stable across runs (used for splits and logging).
        prompt: the question shown to both agents.
        kind: ``"math"``, ``"code"``, ``"choice"``, ``"sim"`` or ``"text"``.
        answer: the reference answer (math/choice), or ``None``.
        tests: a test program for code tasks (run against the candidate in the sandbox), or ``None``.
        entry_point: for code tasks, the function the tests call.
        metadata: suite-specific extras (difficulty, hints, source dataset entry, ...).
    """

    id: str
    prompt: str
    kind: TaskKind = "math"
    answer: str | None = None
    tests: str | None = None
    entry_point: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            raise ConfigError("Task.id must be a non-empty string.")
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ConfigError(f"Task {self.id!r} has an empty prompt.")
        if self.answer is None and self.tests is None and self.kind != "text":
            raise ConfigError(f"Task {self.id!r} needs a reference answer or tests to be checkable.")


def _in_test_split(task_id: str, test_fraction: float, split_seed: int) -> bool:
    """Hash-based split: a task's side depends only on its id and the seed, not on list order."""
    digest = hashlib.sha256(f"{split_seed}:{task_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < test_fraction


class TaskSuite:
    """A named, seeded collection of tasks with a train/test split and a checker.

    Args:
        name: the suite's registry name.
        tasks: the tasks; ids must be unique.
        checker: judges final answers for every task of the suite.
        test_fraction: share of tasks in the test split (by a hash of the task id).
        split_seed: changes which tasks land in the test split.
        test_tasks: an explicit test split (e.g. a dataset's own); then ``tasks`` is the train split
            and ``test_fraction`` is ignored.
        description: one line for ``rsim suites``.
    """

    def __init__(
        self,
        name: str,
        tasks: Sequence[Task],
        checker: Checker,
        *,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        test_tasks: Sequence[Task] | None = None,
        description: str = "",
    ) -> None:
        if not 0.0 <= test_fraction < 1.0:
            raise ConfigError(f"test_fraction must be in [0, 1), got {test_fraction}.")
        all_tasks = list(tasks) + list(test_tasks or [])
        if not all_tasks:
            raise ConfigError(f"Suite {name!r} has no tasks.")
        ids = [t.id for t in all_tasks]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise ConfigError(f"Suite {name!r} has duplicate task id {dup!r}.")
        self.name = name
        self.checker = checker
        self.description = description
        if test_tasks is not None:
            self.train: tuple[Task, ...] = tuple(tasks)
            self.test: tuple[Task, ...] = tuple(test_tasks)
        else:
            in_test = [_in_test_split(t.id, test_fraction, split_seed) for t in tasks]
            self.train = tuple(t for t, s in zip(tasks, in_test) if not s)
            self.test = tuple(t for t, s in zip(tasks, in_test) if s)
            if not self.train:  # tiny suites: never leave training empty
                self.train, self.test = self.test, ()

    def split(self, split: Split = "train") -> tuple[Task, ...]:
        """The tasks of ``split``; ``"all"`` is train followed by test."""
        if split == "train":
            return self.train
        if split == "test":
            if not self.test:
                raise ConfigError(f"Suite {self.name!r} has no test split.")
            return self.test
        if split == "all":
            return self.train + self.test
        raise ConfigError(f"Unknown split {split!r}; use 'train', 'test' or 'all'.")

    def sample(self, rng: np.random.Generator, split: Split = "train") -> Task:
        """One task drawn uniformly from ``split`` with ``rng`` (deterministic for a seeded rng)."""
        tasks = self.split(split)
        return tasks[int(rng.integers(len(tasks)))]

    def __len__(self) -> int:
        return len(self.train) + len(self.test)

    def __repr__(self) -> str:
        return f"TaskSuite({self.name!r}, train={len(self.train)}, test={len(self.test)})"
