"""HumanEval (offline), MBPP and CodeAlpaca loaders, and code rewards through the env."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import rsim_env
from rsim_env.checkers.base import CheckResult
from rsim_env.checkers.code import CodeChecker
from rsim_env.errors import DatasetLoadError
from rsim_env.tasks.code_suites import HUMANEVAL_SIZE, humaneval_suite, load_code_alpaca, load_mbpp
from rsim_env.tasks.registry import make_suite

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fenced(code: str) -> str:
    return f"Here is my solution.\n```python\n{code}\n```"


def test_humaneval_has_all_problems_offline_and_is_registered():
    suite = humaneval_suite()
    tasks = suite.split("all")
    assert len(tasks) == HUMANEVAL_SIZE == len({t.id for t in tasks})
    first = next(t for t in tasks if t.id == "HumanEval/0")
    assert first.entry_point == "has_close_elements" and first.kind == "code"
    assert first.metadata["code_prompt"] in first.prompt and "```python" in first.prompt
    assert isinstance(make_suite("humaneval").checker, CodeChecker)
    assert any(spec.name == "humaneval" and spec.kind == "code" for spec in rsim_env.list_suites())


@pytest.mark.sandbox
def test_all_humaneval_canonical_solutions_pass_and_a_wrong_one_fails():
    suite = humaneval_suite()
    tasks = sorted(suite.split("all"), key=lambda t: int(t.id.split("/")[1]))
    started = time.monotonic()
    results = suite.checker.check_many([fenced(t.metadata["reference_solution"]) for t in tasks], tasks)
    elapsed = time.monotonic() - started
    failed = [(t.id, r.reason) for t, r in zip(tasks, results) if not r.correct]
    assert failed == []
    assert elapsed < 60
    wrong = suite.checker.check(fenced(tasks[0].metadata["code_prompt"] + "    return not True\n"), tasks[0])
    assert not wrong.correct and wrong.reason.startswith("test failed: assert candidate(")


def _play_humaneval_episode(correct: bool) -> tuple[dict, dict]:
    """Planner terminates at once; the reasoner answers with the reference or a wrong body."""
    env = rsim_env.env(suite=humaneval_suite(test_fraction=0.0), split="all")
    env.reset(seed=3)
    task = env.unwrapped.task
    answer = task.metadata["reference_solution"] if correct else task.metadata["code_prompt"] + "    return None\n"
    terminate = env.unwrapped.strategies.termination_index
    rewards, final_info = {}, {}
    for agent in env.agent_iter():
        _, reward, terminated, truncated, info = env.last()
        if terminated or truncated:
            rewards[agent], final_info = reward, info
            env.step(None)
            continue
        env.step(terminate if agent == "planner" else fenced(answer))
    assert final_info["task_id"] == task.id
    return rewards, final_info


@pytest.mark.sandbox
def test_humaneval_rewards_through_the_env():
    right_rewards, right = _play_humaneval_episode(correct=True)
    wrong_rewards, wrong = _play_humaneval_episode(correct=False)
    assert right["correct"] and right["check"]["ended"] == "ok"
    assert not wrong["correct"] and wrong["reason"].startswith("test failed")
    assert right_rewards["reasoner"] > 0 >= wrong_rewards["reasoner"]
    assert right_rewards["planner"] > wrong_rewards["planner"]


def test_mbpp_full_layout_builds_tasks_with_tests_setup_and_entry_points():
    suite = load_mbpp(FIXTURES / "mbpp_sample.jsonl", test_fraction=0.0)
    tasks = {t.metadata["task_id"]: t for t in suite.split("all")}
    assert sorted(tasks) == [901, 902, 903, 904]
    assert tasks[901].id == "mbpp/test/901"
    assert "Your code should pass these tests:" in tasks[901].prompt
    assert "assert sum_squares([1, 2, 3]) == 14" in tasks[901].prompt
    assert tasks[902].metadata["test_setup"] == "import math"
    assert tasks[903].entry_point == "common_chars"  # not the helper defined first
    assert "1001" not in tasks[904].tests
    with_challenge = load_mbpp(FIXTURES / "mbpp_sample.jsonl", challenge_tests=True, test_fraction=0.0)
    assert "is_palindrome(1001)" in next(t for t in with_challenge.split("all") if t.id.endswith("904")).tests


def test_mbpp_sanitized_layout_and_parquet_load_the_same(tmp_path):
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    records = json.loads((FIXTURES / "mbpp_sanitized_sample.json").read_text())
    parquet = tmp_path / "mbpp.parquet"
    pq.write_table(pyarrow.Table.from_pylist(records), parquet)
    from_json = load_mbpp(FIXTURES / "mbpp_sanitized_sample.json", test_fraction=0.0)
    from_parquet = load_mbpp(parquet, test_fraction=0.0)
    assert [t.id for t in from_json.split("all")] == [t.id for t in from_parquet.split("all")]
    fact = next(t for t in from_parquet.split("all") if t.entry_point == "fact")
    assert fact.metadata["test_setup"] == "import math"
    assert fact.prompt.startswith("Write a function to return the factorial of n.")


@pytest.mark.sandbox
def test_mbpp_references_pass_wrong_answers_fail_and_test_setup_is_used():
    tasks = load_mbpp(FIXTURES / "mbpp_sample.jsonl", test_fraction=0.0).split("all")
    tasks += load_mbpp(FIXTURES / "mbpp_sanitized_sample.json", test_fraction=0.0).split("all")
    checker = CodeChecker()
    references = checker.check_many([fenced(t.metadata["reference_solution"]) for t in tasks], tasks)
    assert [(t.id, r.reason) for t, r in zip(tasks, references) if not r.correct] == []
    wrong = checker.check(fenced("def sum_squares(nums):\n    return sum(nums)"), tasks[0])
    assert not wrong.correct and wrong.reason == "test failed: assert sum_squares([1, 2, 3]) == 14"
    # hypotenuse's tests use math.isclose, and only test_setup_code imports math:
    assert "import math" not in tasks[1].metadata["reference_solution"]


def test_mbpp_in_another_format_fails_with_the_columns_found():
    with pytest.raises(DatasetLoadError, match="not in MBPP format.*found columns: input, instruction, output"):
        load_mbpp(FIXTURES / "code_alpaca_sample.json")


def test_code_alpaca_keeps_python_outputs_by_default():
    suite = load_code_alpaca(FIXTURES / "code_alpaca_sample.json", test_fraction=0.0)
    tasks = suite.split("all")
    assert [t.id for t in tasks] == ["code_alpaca/train/0", "code_alpaca/train/1", "code_alpaca/train/2"]
    assert "Input:\n[3, 4, 5]" in tasks[2].prompt and "```python" in tasks[2].prompt
    assert tasks[2].answer == "numbers = [3, 4, 5]\nprint(sum(numbers))"
    everything = load_code_alpaca(FIXTURES / "code_alpaca_sample.json", python_only=False, test_fraction=0.0)
    assert len(everything) == 6


@pytest.mark.sandbox
def test_code_alpaca_default_checker_runs_the_program():
    tasks = load_code_alpaca(FIXTURES / "code_alpaca_sample.json", test_fraction=0.0).split("all")
    checker = load_code_alpaca(FIXTURES / "code_alpaca_sample.json").checker
    assert checker.check(fenced("def reverse(s):\n    return ''.join(reversed(s))"), tasks[0]).correct
    assert checker.check(fenced("print(12)"), tasks[2]).correct
    assert not checker.check(fenced("print(13)"), tasks[2]).correct
    assert not checker.check(fenced("def reverse(s):\n    return s[::-1\n"), tasks[0]).correct


def test_code_alpaca_accepts_a_user_checker():
    class LengthChecker:
        def check(self, response: str, task) -> CheckResult:
            return CheckResult(len(response) < 100, response, "short enough")

    suite = load_code_alpaca(FIXTURES / "code_alpaca_sample.json", checker=LengthChecker())
    assert suite.checker.check("print(1)", suite.split("all")[0]).correct


@pytest.mark.parametrize("loader", [load_mbpp, load_code_alpaca])
def test_hub_ids_fail_fast_and_clearly_when_the_hub_is_unreachable(loader, monkeypatch):
    for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    started = time.monotonic()
    with pytest.raises(DatasetLoadError, match="unreachable.*local file"):
        loader("google-research-datasets/mbpp")
    assert time.monotonic() - started < 10


def test_hub_ids_in_offline_mode_fail_fast_without_a_cached_copy(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path))
    started = time.monotonic()
    with pytest.raises(DatasetLoadError, match="rsim-test/no-such-mbpp"):
        load_mbpp("rsim-test/no-such-mbpp")
    assert time.monotonic() - started < 10


def test_missing_local_file_is_a_clear_error():
    with pytest.raises(DatasetLoadError, match="not found"):
        load_mbpp(FIXTURES / "no_such_mbpp.jsonl")
