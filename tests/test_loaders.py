"""Dataset loaders: the public GSM8K and MATH formats from local files, clear errors, fast offline failure.

The fixtures are small hand-written files in the datasets' own formats (field names and answer
conventions as published), so the tests need no network.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from rsim_env.errors import DatasetLoadError
from rsim_env.tasks import load_gsm8k, load_math, read_records

FIXTURES = Path(__file__).parent / "fixtures"
GSM8K = FIXTURES / "gsm8k_sample.jsonl"
MATH500 = FIXTURES / "math500_sample.jsonl"

ROWS = [{"question": "1+1?", "answer": "1+1=2\n#### 2"}, {"question": "2+2?", "answer": "#### 4"}]


# -- read_records ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name, content", [
    ("list.json", json.dumps(ROWS)),
    ("wrapped.json", json.dumps({"data": ROWS})),
    ("columns.json", json.dumps({"question": ["1+1?", "2+2?"], "answer": ["1+1=2\n#### 2", "#### 4"]})),
    ("lines.json", "\n".join(json.dumps(r) for r in ROWS)),  # what Dataset.to_json writes
    ("rows.jsonl", "\n".join(json.dumps(r) for r in ROWS) + "\n\n"),
    ("rows.ndjson", "\n".join(json.dumps(r) for r in ROWS)),
])
def test_read_records_json_variants(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert read_records(path) == ROWS


def test_read_records_parquet(tmp_path):
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "rows.parquet"
    pq.write_table(pyarrow.Table.from_pylist(ROWS), path)
    assert read_records(str(path)) == ROWS


@pytest.mark.parametrize("name, content, message", [
    ("rows.csv", "question,answer\n", "unsupported file type '.csv'"),
    ("bad.jsonl", '{"question": "a"}\n{oops\n', "line 2"),
    ("scalar.jsonl", '{"question": "a"}\n3\n', "line 2: expected a JSON object"),
    ("bad.json", '{"question": ', "not valid JSON"),
    ("scalar.json", "42", "expected a list of JSON objects"),
    ("bad.parquet", "not parquet", "not a readable Parquet file"),
])
def test_read_records_errors_name_the_problem(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DatasetLoadError, match=message):
        read_records(path)


def test_read_records_missing_file(tmp_path):
    with pytest.raises(DatasetLoadError, match="not found"):
        read_records(tmp_path / "absent.jsonl")


# -- GSM8K --------------------------------------------------------------------------------------------
def test_load_gsm8k_from_jsonl():
    suite = load_gsm8k(GSM8K)
    tasks = {t.answer: t for t in suite.split("all")}
    assert len(suite) == 5 and suite.name == "gsm8k"
    assert set(tasks) == {"18", "3", "70000", "540", "2500"}  # "#### 2,500" loses its separator
    janet = tasks["18"]
    assert janet.prompt.startswith("Janet\u2019s ducks") and janet.kind == "math"
    assert janet.metadata["solution"].endswith("#### 18")
    assert janet.id == "gsm8k/test/0"


def test_gsm8k_solutions_pass_the_checker_and_wrong_answers_fail():
    suite = load_gsm8k(GSM8K)
    for task in suite.split("all"):
        assert suite.checker.check(task.metadata["solution"], task).correct
        assert suite.checker.check(f"The answer is {int(task.answer) + 1}.", task).correct is False
    assert suite.checker.check("The answer is $2,500.", next(t for t in suite.split("all")
                                                            if t.answer == "2500")).correct


def test_load_gsm8k_limit_and_split_label():
    suite = load_gsm8k(GSM8K, split="train", limit=2)
    assert sorted(t.id for t in suite.split("all")) == ["gsm8k/train/0", "gsm8k/train/1"]


def test_load_gsm8k_from_parquet_and_json(tmp_path):
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = read_records(GSM8K)
    pq.write_table(pyarrow.Table.from_pylist(rows), tmp_path / "gsm8k.parquet")
    (tmp_path / "gsm8k.json").write_text(json.dumps(rows))
    for name in ("gsm8k.parquet", "gsm8k.json"):
        assert [t.answer for t in load_gsm8k(tmp_path / name).split("all")] == \
            [t.answer for t in load_gsm8k(GSM8K).split("all")]


def test_wrong_format_names_expected_and_found_columns():
    with pytest.raises(DatasetLoadError) as error:
        load_gsm8k(MATH500)
    message = str(error.value)
    assert "expected columns question, answer" in message
    assert "found columns: answer, level, problem, solution, subject, unique_id" in message
    assert "load_math" in message


def test_gsm8k_record_without_final_answer_line(tmp_path):
    path = tmp_path / "no_hash.jsonl"
    path.write_text(json.dumps({"question": "q?", "answer": "just prose"}))
    with pytest.raises(DatasetLoadError, match="#### <final answer>"):
        load_gsm8k(path)


# -- MATH / MATH-500 ----------------------------------------------------------------------------------
def test_load_math500():
    suite = load_math(MATH500)
    tasks = {t.id: t for t in suite.split("all")}
    polar = tasks["sample/precalculus/1.json"]
    assert polar.answer == r"\left( 3, \frac{\pi}{2} \right)"
    assert polar.metadata["level"] == 2 and polar.metadata["subject"] == "Precalculus"
    assert len(suite) == 5


def test_math500_solutions_pass_the_checker_and_wrong_answers_fail():
    suite = load_math(MATH500)
    for task in suite.split("all"):
        assert suite.checker.check(task.metadata["solution"], task).correct, task.id
        assert not suite.checker.check(r"\boxed{7}", task).correct, task.id


def test_load_original_math_format_from_parquet(tmp_path):
    """MATH has no answer column: the answer is the solution's last box; ``type`` is the subject."""
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [
        {"problem": "What is $1+\\frac12$?", "level": "Level 1", "type": "Prealgebra",
         "solution": "First $1 = \\frac22$, so the sum is $\\boxed{\\frac{3}{2}}$."},
        {"problem": "Compute $2^{10}$.", "level": "Level 2", "type": "Algebra",
         "solution": "$2^{10} = \\boxed{1024}$."},
        {"problem": "A record whose solution never boxes its answer.", "level": "Level 1",
         "type": "Algebra", "solution": "It is 5."},
    ]
    path = tmp_path / "math.parquet"
    pq.write_table(pyarrow.Table.from_pylist(rows), path)
    suite = load_math(path, split="train")
    tasks = suite.split("all")
    assert [t.answer for t in tasks] == [r"\frac{3}{2}", "1024"]  # the third is skipped
    assert tasks[0].id == "math/train/0" and tasks[0].metadata["subject"] == "Prealgebra"
    assert tasks[0].metadata["level"] == "Level 1"
    assert suite.checker.check(r"\boxed{1.5}", tasks[0]).correct


def test_math_wrong_format(tmp_path):
    with pytest.raises(DatasetLoadError, match="expected columns problem.*load_gsm8k"):
        load_math(GSM8K)
    path = tmp_path / "no_solution.jsonl"
    path.write_text(json.dumps({"problem": "p"}))
    with pytest.raises(DatasetLoadError, match="solution \\(or answer\\)"):
        load_math(path)


# -- the Hub ---------------------------------------------------------------------------------------
def test_unreachable_hub_fails_fast_with_offline_alternatives(monkeypatch):
    for variable in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    start = time.perf_counter()
    with pytest.raises(DatasetLoadError) as error:
        load_gsm8k("openai/gsm8k")
    assert time.perf_counter() - start < 10
    message = str(error.value)
    assert "openai/gsm8k" in message and "unreachable" in message
    assert ".jsonl" in message and "gsm_symbolic" in message and "HF_DATASETS_OFFLINE" in message


def test_local_path_that_does_not_exist_is_not_sent_to_the_hub(tmp_path):
    with pytest.raises(DatasetLoadError, match="not found"):
        load_math(tmp_path / "missing.parquet")
