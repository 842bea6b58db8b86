"""Built-in offline math suites: procedural problems from reasoning-gym, and CHAMP.

Every suite here works without a network connection. Importing this module registers them:

- ``arithmetic``: reasoning-gym ``basic_arithmetic`` (``+ - * /`` and brackets)
- ``chain_sum``: reasoning-gym ``chain_sum`` (chains of additions and subtractions)
- ``gsm_symbolic``: reasoning-gym ``gsm_symbolic`` (GSM8K-style word problems from templates)
- ``fractions``: reasoning-gym ``fraction_simplification`` (reduce to lowest terms)
- ``gcd``, ``lcm``: reasoning-gym ``gcd`` and ``lcm``
- ``champ``: champ-dataset v0, 270 competition problems with hints and concepts

**reasoning-gym suites** take ``size`` (number of tasks, default 1000), ``seed`` (the generator
seed, also the split seed), ``test_fraction`` and any keyword argument of the reasoning-gym
dataset's config (e.g. ``min_terms=3``). The same arguments always give the same tasks and the
same split; task ids are ``"<suite>/<seed>/<index>"``. ``Task.metadata`` is reasoning-gym's entry
metadata. An answer is correct if the equivalence check or reasoning-gym's own ``score_answer``
(with a score of 1.0) accepts it; for ``fractions`` the scorer alone decides, since an equal but
unreduced fraction does not answer "simplify to lowest terms". Building 1000 tasks takes tens of
milliseconds for every suite.

**champ**: the 270 competition problems of CHAMP (Mao et al., 2024), prompt = the problem text,
``Task.answer`` = CHAMP's reference answer verbatim, and in the metadata the category, the
problem's hints and concepts (CHAMP's point: they can be shown to the reasoner), the reference
solution steps, and how the answer is checked:

- ``answer_type="math"`` (195 problems: a number, a set of numbers or a formula, possibly wrapped in
  words such as "100 (i.e., all values)", "0 is the only possible value", "The limit exists and is
  equal to 2/3", or given in several equivalent forms "C(10, 5), or equivalently 252"):
  ``metadata["accepted_answers"]`` lists the mathematical forms, checked for equivalence (fast path
  and math-verify). An approximation given beside the exact value is dropped.
- ``answer_type="yes_no"`` (33): "Yes"/"No", compared as words.
- ``answer_type="free_text"`` (42; e.g. "No integer solutions", "x=0, y=2 and x=9, y=11",
  "Monotonically increasing"): CHAMP's authors grade these with a model; here only an answer that
  equals the reference text (ignoring case, spacing and a final period) counts, so scores on them
  are a **lower bound**. ``metadata["auto_checkable"]`` is ``False`` for them, and
  ``checkable_only=True`` leaves them out (228 problems remain).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from rsim_env.checkers.math import MathChecker
from rsim_env.errors import ConfigError, DatasetLoadError
from rsim_env.tasks.registry import register_suite
from rsim_env.tasks.task import Task, TaskSuite

__all__ = ["reasoning_gym_suite", "champ_suite", "classify_champ_answer", "ReasoningGymScorer",
           "REASONING_GYM_SUITES"]

DEFAULT_SIZE = 1000

REASONING_GYM_SUITES: dict[str, tuple[str, str]] = {
    "arithmetic": ("basic_arithmetic", "Arithmetic expressions with + - * / and brackets (reasoning-gym)."),
    "chain_sum": ("chain_sum", "Chains of additions and subtractions of integers (reasoning-gym)."),
    "gsm_symbolic": ("gsm_symbolic", "GSM8K-style word problems from symbolic templates (reasoning-gym)."),
    "fractions": ("fraction_simplification", "Simplify a fraction to lowest terms (reasoning-gym)."),
    "gcd": ("gcd", "Greatest common divisor of integers (reasoning-gym)."),
    "lcm": ("lcm", "Least common multiple of integers (reasoning-gym)."),
}
"""Suite name -> (reasoning-gym dataset name, description)."""

# Suites whose scorer must be the only judge: equal in value is not the same as correct.
_FORM_MATTERS = frozenset({"fractions"})


def reasoning_gym_suite(name: str, *, size: int = DEFAULT_SIZE, seed: int = 0,
                        test_fraction: float = 0.2, **dataset_kwargs: Any) -> TaskSuite:
    """The built-in reasoning-gym suite ``name`` (a key of :data:`REASONING_GYM_SUITES`).

    Args:
        name: the rsim suite name, e.g. ``"arithmetic"``.
        size: how many tasks to generate.
        seed: reasoning-gym's generator seed; also the train/test split seed.
        test_fraction: share of the tasks in the test split.
        dataset_kwargs: passed to the reasoning-gym dataset config (difficulty knobs).
    """
    if name not in REASONING_GYM_SUITES:
        raise ConfigError(f"{name!r} is not a reasoning-gym suite; choose from "
                          f"{', '.join(sorted(REASONING_GYM_SUITES))}.")
    if not isinstance(size, int) or size < 1:
        raise ConfigError(f"size must be a positive integer, got {size!r}.")
    import reasoning_gym  # imported here: it takes over a second and most runs use one suite

    dataset_name, description = REASONING_GYM_SUITES[name]
    try:
        dataset = reasoning_gym.create_dataset(dataset_name, size=size, seed=seed, **dataset_kwargs)
    except (TypeError, ValueError, AssertionError) as exc:
        raise ConfigError(f"Invalid settings for suite {name!r} (reasoning-gym {dataset_name!r}): "
                          f"{exc}. See reasoning_gym's {dataset_name} config for valid keys.") from exc
    tasks = []
    for index in range(size):
        entry = dataset[index]
        tasks.append(Task(id=f"{name}/{seed}/{index}", prompt=entry["question"], kind="math",
                          answer=str(entry["answer"]), metadata=dict(entry["metadata"])))
    checker = MathChecker(scorer=ReasoningGymScorer(dataset),
                          scorer_only=name in _FORM_MATTERS)
    return TaskSuite(name, tasks, checker, test_fraction=test_fraction, split_seed=seed,
                     description=description)


@dataclass(frozen=True)
class ReasoningGymScorer:
    """reasoning-gym's ``dataset.score_answer`` as a :class:`MathChecker` scorer.

    A class rather than a closure so that suites pickle (vectorized envs in subprocesses, Ray).
    """

    dataset: Any

    def __call__(self, answer: str, task: Task) -> float:
        entry = {"question": task.prompt, "answer": task.answer, "metadata": task.metadata}
        return float(self.dataset.score_answer(answer, entry))

    def __repr__(self) -> str:
        return f"ReasoningGymScorer({type(self.dataset).__name__})"


def _suite_factory(name: str) -> Callable[..., TaskSuite]:
    def factory(size: int = DEFAULT_SIZE, seed: int = 0, test_fraction: float = 0.2,
                **dataset_kwargs: Any) -> TaskSuite:
        return reasoning_gym_suite(name, size=size, seed=seed, test_fraction=test_fraction,
                                   **dataset_kwargs)

    factory.__name__ = factory.__qualname__ = f"{name}_suite"
    factory.__doc__ = f"{REASONING_GYM_SUITES[name][1]} See :func:`reasoning_gym_suite`."
    return factory


# -- CHAMP --------------------------------------------------------------------------------------
_MATH_SPAN_RE = re.compile(r"@@(.+?)@@")
_PLAIN_NUMBER_RE = re.compile(r"^-?\d+(?:/\d+)?$")
_ALTERNATIVES_RE = re.compile(r",\s*or (?:equivalently|an equivalent form such as)\s+")
_LEADING_VALUE_RES = (
    re.compile(r"^(?P<v>\S+) is the only possible value$"),
    re.compile(r"^(?P<v>.+?) \((?:i\.e\.,|none|no) .*\)$"),
    re.compile(r"^The limit exists and is equal to (?P<v>.+)$"),
    re.compile(r"^The only possible value for the limit is (?P<v>.+)$"),
    re.compile(r"^(?P<v>\S+) (?:values|inequalities|pairs|roots|times)$"),
)
_NUMBER_LIST_RE = re.compile(r"^-?\d+(?:, -?\d+)* and -?\d+$")
_ASSIGNMENTS_RE = re.compile(r"^[a-z]=-?\d+(?:, [a-z]=-?\d+)+$")


def classify_champ_answer(answer: str, raw_answer: str) -> tuple[str, list[str]]:
    """How a CHAMP reference answer is checked: ``(answer_type, accepted_answers)``.

    ``raw_answer`` is CHAMP's marked-up form, in which ``@@...@@`` delimits the math. See the
    module docstring for the three types.
    """
    if answer in ("Yes", "No"):
        return "yes_no", [answer]
    raw = raw_answer.split(", or approximately")[0]  # an approximation is not the answer
    plain = raw.replace("@@", "")
    spans = _MATH_SPAN_RE.findall(raw)
    if _PLAIN_NUMBER_RE.match(plain) or (raw == f"@@{spans[0]}@@" if len(spans) == 1 else False):
        if not _is_solution_list(plain):
            return "math", [plain]
    parts = _ALTERNATIVES_RE.split(raw)
    if len(parts) > 1:  # "X, or equivalently Y"
        return "math", [part.replace("@@", "").strip() for part in parts]
    if _NUMBER_LIST_RE.match(plain):  # "1, 4 and 9": a set of numbers
        return "math", [plain.replace(" and ", ", ")]
    if _ASSIGNMENTS_RE.match(plain):  # "a=3, b=-7, c=4": one solution
        return "math", [plain]
    for pattern in _LEADING_VALUE_RES:
        match = pattern.match(plain)
        if match and (_PLAIN_NUMBER_RE.match(match.group("v")) or match.group("v") in spans):
            return "math", [match.group("v")]
    return "free_text", [answer]


def _is_solution_list(span: str) -> bool:
    """Several solutions or assignments (``x=6, y=5``): set semantics that math can't settle."""
    return "=" in span and ("," in span or " or " in span)


def champ_suite(test_fraction: float = 0.2, seed: int = 0, checkable_only: bool = False,
                timeout: float = 5.0) -> TaskSuite:
    """CHAMP's 270 competition problems with hints and concepts (see the module docstring).

    Args:
        test_fraction: share of the problems in the test split.
        seed: the split seed.
        checkable_only: keep only problems whose answer is math or yes/no (drop free text).
        timeout: the math checker's per-answer timeout in seconds.
    """
    try:
        import champ_dataset

        dataset = champ_dataset.load("v0")
    except Exception as exc:  # a missing package or a broken data file
        raise DatasetLoadError(f"Could not load CHAMP from the champ-dataset package ({exc}). "
                               "Install it with `pip install champ-dataset`.") from exc
    tasks = []
    for problem in dataset.problems.values():
        answer_type, accepted = classify_champ_answer(problem.answer, problem.raw_answer)
        if checkable_only and answer_type == "free_text":
            continue
        hints, concepts = [], []
        for identifier in problem.ch_list:
            item = dataset[identifier]
            if identifier.startswith("H_"):
                hints.append(item.text)
            else:
                concepts.append({"id": item.identifier, "name": item.name, "text": item.text,
                                 "category": item.category})
        tasks.append(Task(
            id=problem.identifier, prompt=problem.text, kind="math", answer=problem.answer,
            metadata={
                "source": "champ", "category": problem.category, "hints": hints,
                "concepts": concepts, "solution": [step.text for step in problem.solution.steps],
                "answer_type": answer_type, "accepted_answers": accepted,
                "auto_checkable": answer_type != "free_text",
            }))
    description = "CHAMP: 270 competition math problems with hints and concepts (champ-dataset)."
    return TaskSuite("champ", tasks, MathChecker(timeout=timeout), test_fraction=test_fraction,
                     split_seed=seed, description=description)


for _name, (_, _description) in REASONING_GYM_SUITES.items():
    register_suite(_name, _suite_factory(_name), description=_description, kind="math")
register_suite("champ", champ_suite,
               description="CHAMP: 270 competition math problems with hints and concepts.", kind="math")
