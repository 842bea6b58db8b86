"""Final-answer extraction: the documented order, the trimming, and linear cost on hostile input."""

from __future__ import annotations

import time

import pytest

from rsim_env.checkers.answer import MAX_SCAN_CHARS, ExtractedAnswer, extract_answer, has_final_answer


@pytest.mark.parametrize("text, answer", [
    (r"so the answer is \boxed{42}.", "42"),
    (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
    (r"\boxed{\left( 3, \frac{\pi}{2} \right)}", r"\left( 3, \frac{\pi}{2} \right)"),
    (r"\fbox{7}", "7"),
    (r"\boxed {  12 }", "12"),
    (r"the set is \boxed{\{1, 2\}}", r"\{1, 2\}"),  # escaped braces do not close the box
    (r"\boxed{\text{5 dollars}}", r"\text{5 dollars}"),
])
def test_boxed_content_with_balanced_braces(text, answer):
    assert extract_answer(text) == ExtractedAnswer(answer, "boxed", True, (answer,))


def test_last_box_wins_and_all_boxes_are_kept():
    text = r"First \boxed{3}. Wait, I made a slip: \boxed{5}."
    got = extract_answer(text)
    assert got.answer == "5"
    assert got.all_boxed == ("3", "5")


def test_unclosed_and_empty_boxes_are_ignored():
    assert extract_answer(r"\boxed{4} then \boxed{}").answer == "4"
    assert extract_answer(r"The answer is 6. \boxed{unfinished").answer == "6"


@pytest.mark.parametrize("text, answer", [
    ("The answer is 42.", "42"),
    ("so the final answer is $-3.5$.", "-3.5"),
    ("Final Answer: The final answer is $5$. I hope it is correct.", "5"),
    ("**Answer:** 42", "42"),
    ("The answer is **42**.", "42"),
    ("ANSWER: 1,234", "1,234"),
    ("Answer:\n\n  $x = 3$\n", "x = 3"),
    ("The answer is 3.14 exactly", "3.14 exactly"),
    ("The answer is 12 apples. Then we rest.", "12 apples"),
])
def test_answer_statements(text, answer):
    got = extract_answer(text)
    assert (got.answer, got.method, got.explicit) == (answer, "answer_is", True)


def test_last_answer_statement_wins():
    assert extract_answer("The answer is 4.\nNo, the answer is 5.").answer == "5"


def test_gsm8k_hash_line():
    got = extract_answer("She makes 9 * 2 = $<<9*2=18>>18.\n#### 18")
    assert (got.answer, got.method, got.explicit) == ("18", "hash", True)


@pytest.mark.parametrize("text, number", [
    ("I think it is 17", "17"),
    ("first 3, then -12", "-12"),
    ("roughly 3.75 litres left", "3.75"),
    ("a total of 1,234,567 grains", "1,234,567"),
    ("the ratio is 3/4 now", "3/4"),
    ("growth of 15% this year", "15%"),
    ("x-3", "3"),  # a minus glued to a word is an operator, not a sign
])
def test_last_number_fallback_is_not_explicit(text, number):
    got = extract_answer(text)
    assert (got.answer, got.method, got.explicit) == (number, "last_number", False)


def test_order_boxed_then_statement_then_hash_then_number():
    assert extract_answer(r"The answer is 1. #### 2 \boxed{3} 4").method == "boxed"
    assert extract_answer("#### 2\nThe answer is 1. 4").method == "answer_is"
    assert extract_answer("#### 2\nthen 4").method == "hash"


@pytest.mark.parametrize("text", ["", "no digits here at all", None, 42, b"The answer is 3"])
def test_nothing_to_extract(text):
    assert extract_answer(text) is None
    assert has_final_answer(text) is False


@pytest.mark.parametrize("text, expected", [
    (r"\boxed{3}", True), ("The answer is 3", True), ("#### 3", True), ("Answer: yes", True),
    ("so far the total is 3", False), (r"\boxed{3", False), (r"\boxed{}", False),
])
def test_has_final_answer_needs_an_explicit_statement(text, expected):
    assert has_final_answer(text) is expected


def test_only_the_tail_is_scanned():
    padding = "x" * (MAX_SCAN_CHARS + 10)
    assert extract_answer(r"\boxed{3} " + padding) is None
    assert extract_answer(padding + r" \boxed{3}").answer == "3"


PATHOLOGICAL = {
    "100 kB of letters": "a" * 100_000,
    "100 kB of digits": "9" * 100_000,
    "50k numbers": "1 " * 50_000,
    "10k nested braces inside a box": r"\boxed{" + "{" * 10_000 + "}" * 10_000 + "}",
    "10k nested boxes": r"\boxed{" * 10_000 + "7" + "}" * 10_000,
    "20k unclosed boxes": r"\boxed{" * 20_000,
    "10k opening braces then boxes": "{" * 10_000 + r"\boxed{" * 10_000 + "}" * 5_000,
    "repeated statements": "The answer is " * 10_000,
    "repeated hashes": "#### " * 20_000,
    "escaped braces": r"\boxed{" + r"\{" * 30_000 + "}",
    "thousands separators": "1" + ",000" * 25_000,
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_pathological_inputs_are_fast(name):
    text = PATHOLOGICAL[name]
    start = time.perf_counter()
    got = extract_answer(text)
    has_final_answer(text)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5, f"{name}: {elapsed:.3f}s"
    if got is not None:
        assert len(got.answer) <= MAX_SCAN_CHARS
        assert sum(map(len, got.all_boxed)) <= MAX_SCAN_CHARS


def test_nested_boxes_give_the_innermost_answer():
    assert extract_answer(PATHOLOGICAL["10k nested boxes"]).answer == "7"


def test_typical_extraction_takes_microseconds():
    text = r"Adding 5 and 37 gives 42. The answer is \boxed{42}."
    extract_answer(text)
    start = time.perf_counter()
    for _ in range(2000):
        extract_answer(text)
    per_call = (time.perf_counter() - start) / 2000
    assert per_call < 200e-6, f"{per_call * 1e6:.1f} us per extraction"
