"""Built-in math suites: registered, deterministic, split cleanly, and checkable."""

from __future__ import annotations

import pickle
import time

import pytest

from rsim_env.errors import ConfigError
from rsim_env.tasks import list_suites, make_suite
from rsim_env.tasks.math_suites import REASONING_GYM_SUITES, champ_suite, reasoning_gym_suite

RG_SUITES = sorted(REASONING_GYM_SUITES)


def test_all_built_in_math_suites_are_registered():
    registered = {spec.name: spec for spec in list_suites()}
    for name in [*RG_SUITES, "champ"]:
        assert name in registered and registered[name].kind == "math"
        assert registered[name].description


@pytest.mark.parametrize("name", RG_SUITES)
def test_same_seed_same_tasks_and_split(name):
    first = reasoning_gym_suite(name, size=200, seed=7)
    second = reasoning_gym_suite(name, size=200, seed=7)
    assert [(t.id, t.prompt, t.answer) for t in first.train] == \
        [(t.id, t.prompt, t.answer) for t in second.train]
    assert [t.id for t in first.test] == [t.id for t in second.test]
    other = reasoning_gym_suite(name, size=200, seed=8)
    assert [t.prompt for t in other.split("all")] != [t.prompt for t in first.split("all")]


@pytest.mark.parametrize("name", RG_SUITES)
def test_split_is_disjoint_and_complete(name):
    suite = reasoning_gym_suite(name, size=300, seed=1, test_fraction=0.25)
    train, test = {t.id for t in suite.train}, {t.id for t in suite.test}
    assert not train & test
    assert len(train | test) == len(suite) == 300
    assert 0.15 < len(test) / 300 < 0.35


def test_growing_the_suite_keeps_the_tasks_and_their_side_of_the_split():
    small = reasoning_gym_suite("chain_sum", size=100, seed=3)
    large = reasoning_gym_suite("chain_sum", size=400, seed=3)
    large_test = {t.id for t in large.test}
    assert {t.id for t in small.test} <= large_test
    assert not {t.id for t in small.train} & large_test
    prompts = {t.id: t.prompt for t in large.split("all")}
    assert all(prompts[t.id] == t.prompt for t in small.split("all"))


@pytest.mark.parametrize("name", RG_SUITES)
def test_reference_answers_pass_and_wrong_answers_fail(name):
    suite = make_suite(name, size=40, seed=11)
    for task in suite.split("all")[:25]:
        boxed = suite.checker.check(rf"Working... so the answer is \boxed{{{task.answer}}}.", task)
        stated = suite.checker.check(f"The answer is {task.answer}", task)
        assert boxed.correct, (task.prompt, task.answer, boxed)
        assert stated.correct, (task.prompt, task.answer, stated)
        wrong = suite.checker.check(rf"\boxed{{{_wrong(task)}}}", task)
        assert not wrong.correct, (task.prompt, task.answer, wrong)


def _wrong(task) -> str:
    if "simplified_numerator" in task.metadata:  # fractions: equal in value but not reduced
        meta = task.metadata
        return f"{meta['simplified_numerator'] * 2}/{meta['simplified_denominator'] * 2}"
    return str(int(float(task.answer)) + 1)


def test_fractions_accept_any_spelling_of_the_lowest_terms():
    suite = make_suite("fractions", size=30, seed=2)
    for task in suite.split("all")[:10]:
        numerator, denominator = (task.metadata["simplified_numerator"],
                                  task.metadata["simplified_denominator"])
        for spelling in (f"{numerator}/{denominator}", rf"\frac{{{numerator}}}{{{denominator}}}"):
            assert suite.checker.check(rf"\boxed{{{spelling}}}", task).correct


def test_scorer_decides_when_equivalence_cannot():
    suite = make_suite("gsm_symbolic", size=10, seed=0)
    task = suite.split("all")[0]
    result = suite.checker.check(f"The answer is {task.answer} items, not {int(task.answer) + 5}.", task)
    assert result.correct and result.details["method"] == "scorer"


def test_suites_pickle_with_their_scorer():
    """Vectorized envs in subprocesses and Ray ship suites by pickle."""
    suite = make_suite("fractions", size=5, seed=0)
    copy = pickle.loads(pickle.dumps(suite))
    task = copy.split("all")[0]
    assert copy.checker.check(rf"\boxed{{{task.answer}}}", task).correct


def test_metadata_carries_the_reasoning_gym_entry():
    task = make_suite("gsm_symbolic", size=5, seed=0).split("all")[0]
    assert task.metadata["source_dataset"] == "gsm_symbolic"
    assert "answer_cot" in task.metadata and task.kind == "math"
    assert task.id.startswith("gsm_symbolic/0/")


def test_dataset_kwargs_reach_reasoning_gym():
    suite = make_suite("chain_sum", size=20, seed=0, min_terms=5, max_terms=5)
    assert all(task.metadata["num_terms"] == 5 for task in suite.split("all"))
    with pytest.raises(ConfigError, match="chain_sum"):
        make_suite("chain_sum", size=5, not_a_setting=1)
    with pytest.raises(ConfigError, match="size"):
        make_suite("gcd", size=0)
    with pytest.raises(ConfigError, match=r"'min_terms'.*its suite_kwargs are"):
        make_suite("sim", min_terms=2)


@pytest.mark.parametrize("name", RG_SUITES)
def test_default_size_builds_fast(name):
    start = time.perf_counter()
    suite = reasoning_gym_suite(name)
    elapsed = time.perf_counter() - start
    assert len(suite) == 1000
    assert elapsed < 5.0, f"{name}: {elapsed:.2f}s for 1000 tasks"


# -- CHAMP ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def champ():
    return champ_suite()


def test_champ_has_270_problems_with_hints_and_concepts(champ):
    tasks = champ.split("all")
    assert len(tasks) == 270
    first = next(t for t in tasks if t.id == "P_Combinatorics_1")
    assert first.answer == "239" and "strings of length 6" in first.prompt
    assert first.metadata["category"] == "Combinatorics"
    assert first.metadata["hints"] and all(isinstance(h, str) and h for h in first.metadata["hints"])
    assert first.metadata["concepts"][0]["text"]
    assert first.metadata["solution"]
    assert sum(bool(t.metadata["hints"]) for t in tasks) > 200


def test_champ_answer_types(champ):
    counts: dict[str, int] = {}
    for task in champ.split("all"):
        counts[task.metadata["answer_type"]] = counts.get(task.metadata["answer_type"], 0) + 1
        assert task.metadata["auto_checkable"] == (task.metadata["answer_type"] != "free_text")
    assert counts == {"math": 195, "yes_no": 33, "free_text": 42}
    assert len(champ_suite(checkable_only=True)) == 228


def test_champ_split_is_deterministic(champ):
    again = champ_suite()
    assert [t.id for t in champ.test] == [t.id for t in again.test]
    assert not {t.id for t in champ.train} & {t.id for t in champ.test}


def test_every_champ_reference_passes_its_checker(champ):
    for task in champ.split("all"):
        form = task.metadata["accepted_answers"][-1]
        result = champ.checker.check(rf"The answer is $\boxed{{{form}}}$.", task)
        assert result.correct, (task.id, form, result)


@pytest.mark.parametrize("problem, response, correct", [
    ("P_Combinatorics_2", r"\boxed{252}", True),  # "C(10, 5), or equivalently 252"
    ("P_Combinatorics_2", r"\boxed{\binom{10}{5}}", True),
    ("P_Combinatorics_2", r"\boxed{251}", False),
    ("P_Combinatorics_37", r"\boxed{\frac{n(n+1)(2n+1)}{6}}", True),
    ("P_Combinatorics_37", r"\boxed{\frac{n(n+1)}{2}}", False),
    ("P_Inequality_18", r"\boxed{\frac{1}{\sqrt{3}}}", True),  # "sqrt(3)/3, or equivalently ..."
    ("P_Inequality_14", r"\boxed{100}", True),  # "100 (i.e., all values)"
    ("P_Number-Theory_19", r"\boxed{0}", True),  # "0 is the only possible value"
    ("P_Number-Theory_3", r"\boxed{625, 376}", True),  # "376 and 625"
    ("P_Combinatorics_14", r"\boxed{\frac{5}{14}}", True),  # "5/14, or approximately 35.7%"
    ("P_Combinatorics_14", r"\boxed{35.7\%}", False),
    ("P_Combinatorics_17", r"\boxed{No}", True),  # yes/no
    ("P_Combinatorics_17", r"\boxed{Yes}", False),
    ("P_Number-Theory_7", "The answer is: No integer solutions.", True),  # free text
    ("P_Number-Theory_7", r"\boxed{0}", False),
])
def test_champ_equivalent_forms(champ, problem, response, correct):
    task = next(t for t in champ.split("all") if t.id == problem)
    assert champ.checker.check(response, task).correct is correct
