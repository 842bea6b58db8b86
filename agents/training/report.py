"""End-of-run report: ``report.md`` and PNG plots, written from a training run directory.

The trainer leaves a run directory; :func:`write_report` reads it and writes ``report.md`` beside it,
with the plots under ``plots/``:

- ``curves.png``: planner and reasoner reward and train accuracy per update, and evaluation accuracy
  per suite with its 95% confidence interval;
- ``strategy_usage.png``: the fraction of planner decisions that chose each strategy, per update;
- ``strategies_vs_accuracy.png``: accuracy by the number of strategies injected in an episode, from
  the last evaluation, with 95% Wilson intervals;
- ``continual.png`` (continual runs only): accuracy on each suite after each training stage.

The report also holds a run summary, the final comparison of planners (accuracy and planner reward
with 95% intervals, and one sentence saying what the intervals do and do not show), the
transfer/forgetting table of a continual run, and the resolved config.

Inputs, all optional except ``metrics.jsonl`` (whose absence is reported, not raised):

- ``config.yaml``: shown verbatim;
- ``metrics.jsonl``: one JSON object a line; ``"kind": "train"`` lines (one per update) and
  ``"kind": "eval"`` lines (one per evaluated suite); other kinds are ignored, as are unknown keys;
- ``final_eval.json``: a list of evaluation results (:class:`agents.evaluation.EvalResult` as dicts);
- ``continual.json``: ``stages``, ``suites``, ``accuracy[i][j]`` (suite j after stage i), ``accuracy_ci``.

Regenerate a report with ``python -m agents.training.report RUN_DIR``.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from agents.evaluation import markdown_table, wilson_interval
from rsim_env.atomic import write_bytes_atomic, write_text_atomic
from rsim_env.errors import RSIMError

PLOTS_DIR = "plots"
# The planners the trained one is compared with at the end of a run (issue 5, point 7).
BASELINE_PLANNERS = ("none", "random")
FINAL_EVAL_KEYS = ("env_id", "planner", "reasoner", "split", "episodes", "accuracy", "accuracy_ci",
                   "planner_reward", "planner_reward_ci", "reasoner_reward", "tokens_per_episode",
                   "strategies_per_episode", "seconds")


class RunFileError(RSIMError, ValueError):
    """A file in a run directory that is not in the format the trainer writes."""


@dataclass
class TrainRecord:
    """One update, from a ``"kind": "train"`` line of ``metrics.jsonl``."""

    update: int
    stage: int = 0
    suite: str = ""
    episodes: int = 0
    planner_reward: float | None = None
    reasoner_reward: float | None = None
    accuracy: float | None = None
    strategy_usage: dict[str, int] = field(default_factory=dict)
    tokens_per_second: float | None = None
    seconds_per_update: float | None = None


@dataclass
class EvalRecord:
    """One suite evaluated at one update, from a ``"kind": "eval"`` line of ``metrics.jsonl``."""

    update: int
    suite: str = ""
    accuracy: float | None = None
    accuracy_ci: tuple[float, float] | None = None
    episodes_detail: list[tuple[int, bool]] = field(default_factory=list)  # (strategies, correct) per episode


@dataclass
class ContinualResult:
    """Accuracy on every suite after each stage of a continual-learning run (``continual.json``)."""

    stages: list[str]
    suites: list[str]
    accuracy: list[list[float | None]]  # None: the suite was not evaluated after that stage
    accuracy_ci: list[list[tuple[float, float] | None]] | None = None

    def forgetting(self) -> list[float | None]:
        """Per suite, the best accuracy after an earlier stage minus the accuracy after the last one
        (Chaudhry et al., 2018, "Riemannian Walk"); ``None`` where either is missing. Negative values
        mean later stages helped."""
        forgetting: list[float | None] = []
        for j in range(len(self.suites)):
            earlier = [row[j] for row in self.accuracy[:-1] if row[j] is not None]
            final = self.accuracy[-1][j]
            forgetting.append(max(earlier) - final if earlier and final is not None else None)
        return forgetting


@dataclass
class Run:
    """Everything the report reads from a run directory."""

    directory: Path
    config_text: str | None
    train: list[TrainRecord]
    evals: list[EvalRecord]
    final: list[SimpleNamespace]  # final_eval.json rows; markdown_table reads them by attribute
    continual: ContinualResult | None


# ---------------------------------------------------------------------------------------------- reading


def load_run(run_dir: str | Path) -> Run:
    """Read a run directory; raises :class:`RunFileError` naming the file (and line) that is malformed."""
    directory = Path(run_dir)
    if not directory.is_dir():
        raise RunFileError(f"{directory} is not a directory; pass the run directory the trainer wrote.")
    config = directory / "config.yaml"
    metrics = directory / "metrics.jsonl"
    train, evals = read_metrics(metrics) if metrics.exists() else ([], [])
    return Run(
        directory=directory,
        config_text=config.read_text(encoding="utf-8") if config.exists() else None,
        train=train,
        evals=evals,
        final=_read_final_eval(directory / "final_eval.json"),
        continual=_read_continual(directory / "continual.json"),
    )


def read_metrics(path: Path) -> tuple[list[TrainRecord], list[EvalRecord]]:
    """The train and eval records of ``metrics.jsonl``, in file order; blank lines are skipped."""
    train: list[TrainRecord] = []
    evals: list[EvalRecord] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise RunFileError(f"{where}: not valid JSON ({err.msg}); each line must be one JSON object.") from None
        if not isinstance(obj, dict):
            raise RunFileError(f"{where}: expected a JSON object, got {type(obj).__name__}.")
        if obj.get("kind") == "train":
            train.append(_record(TrainRecord, obj, where))
        elif obj.get("kind") == "eval":
            evals.append(_eval_record(obj, where))
    return train, evals


def _record(cls: type, obj: dict[str, Any], where: str) -> Any:
    """``cls`` from the keys of ``obj`` it knows, nulls read as absent; ``update`` is the one key every
    line needs."""
    if not isinstance(obj.get("update"), int):
        raise RunFileError(f"{where}: a {obj['kind']!r} line needs an integer 'update'.")
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in obj.items() if k in known and v is not None})


def _eval_record(obj: dict[str, Any], where: str) -> EvalRecord:
    record = _record(EvalRecord, obj, where)
    try:
        record.episodes_detail = [(int(e["strategies"]), bool(e["correct"])) for e in record.episodes_detail]
    except (KeyError, TypeError, ValueError):
        raise RunFileError(f"{where}: each 'episodes_detail' entry needs 'strategies' (int) and "
                           "'correct' (bool).") from None
    return record


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise RunFileError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}).") from None


def _read_final_eval(path: Path) -> list[SimpleNamespace]:
    if not path.exists():
        return []
    rows = _read_json(path)
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise RunFileError(f"{path}: expected a list of evaluation results (JSON objects).")
    for number, row in enumerate(rows, start=1):
        missing = [k for k in FINAL_EVAL_KEYS if k not in row]
        if missing:
            raise RunFileError(f"{path}: result {number} lacks {', '.join(missing)}.")
    return [SimpleNamespace(**row) for row in rows]


def _read_continual(path: Path) -> ContinualResult | None:
    if not path.exists():
        return None
    obj = _read_json(path)
    try:
        result = ContinualResult(stages=obj["stages"], suites=obj["suites"], accuracy=obj["accuracy"],
                                 accuracy_ci=obj.get("accuracy_ci"))
    except (KeyError, TypeError):
        raise RunFileError(f"{path}: expected an object with 'stages', 'suites' and 'accuracy'.") from None
    shape = (len(result.stages), len(result.suites))
    grids = [result.accuracy] + ([result.accuracy_ci] if result.accuracy_ci is not None else [])
    if any(len(grid) != shape[0] or any(len(row) != shape[1] for row in grid) for grid in grids):
        raise RunFileError(f"{path}: 'accuracy' (and 'accuracy_ci') must have one row per stage and "
                           f"one column per suite ({shape[0]} x {shape[1]}).")
    return result


# ---------------------------------------------------------------------------------------------- plots


def _save(fig: Figure, path: Path) -> None:
    """Render ``fig`` as PNG in memory and write it atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    write_bytes_atomic(path, buffer.getvalue())


def _stage_starts(train: Sequence[TrainRecord]) -> list[int]:
    """The first update of every continual-learning stage after the first."""
    return [b.update for a, b in itertools.pairwise(train) if b.stage != a.stage]


def plot_curves(train: Sequence[TrainRecord], evals: Sequence[EvalRecord]) -> Figure:
    """Reward per agent (left) and accuracy, train and eval per suite with 95% CIs (right), per update."""
    fig = Figure(figsize=(11, 4), layout="constrained")
    reward_ax, accuracy_ax = fig.subplots(1, 2, sharex=True)
    for name in ("planner_reward", "reasoner_reward"):
        points = [(r.update, getattr(r, name)) for r in train if getattr(r, name) is not None]
        if points:
            reward_ax.plot(*zip(*points), label=name.split("_")[0])
    reward_ax.set(title="Reward (train)", xlabel="update", ylabel="mean reward per episode")
    points = [(r.update, r.accuracy) for r in train if r.accuracy is not None]
    if points:
        accuracy_ax.plot(*zip(*points), color="0.6", linewidth=1, label="train")
    for suite, records in _by_suite(evals).items():
        records = [r for r in records if r.accuracy is not None]
        accuracy = [r.accuracy for r in records]
        accuracy_ax.errorbar([r.update for r in records], accuracy,
                             yerr=_yerr(accuracy, [r.accuracy_ci or (a, a) for r, a in zip(records, accuracy)]),
                             marker="o", capsize=3, label=f"eval: {suite}")
    accuracy_ax.set(title="Accuracy", xlabel="update", ylabel="accuracy", ylim=(-0.02, 1.02))
    for ax in (reward_ax, accuracy_ax):
        for start in _stage_starts(train):
            ax.axvline(start, color="0.3", linestyle=":", linewidth=1)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    return fig


def _yerr(values: Sequence[float], intervals: Sequence[Sequence[float]]) -> list[list[float]]:
    """Error-bar lengths below and above each value; clipped at 0, as rounding can put a bound a hair past it."""
    return [[max(0.0, v - lo) for v, (lo, _) in zip(values, intervals)],
            [max(0.0, hi - v) for v, (_, hi) in zip(values, intervals)]]


def _by_suite(evals: Sequence[EvalRecord]) -> dict[str, list[EvalRecord]]:
    groups: dict[str, list[EvalRecord]] = defaultdict(list)
    for record in evals:
        groups[record.suite].append(record)
    return dict(groups)


def usage_fractions(train: Sequence[TrainRecord]) -> tuple[list[str], list[int], list[list[float]]]:
    """Strategies (in order of first appearance), updates with decisions, and the fraction of each
    update's decisions that chose each strategy (rows: strategies, columns: updates)."""
    strategies = list(dict.fromkeys(name for r in train for name in r.strategy_usage))
    used = [r for r in train if sum(r.strategy_usage.values()) > 0]
    fractions = [[r.strategy_usage.get(name, 0) / sum(r.strategy_usage.values()) for r in used] for name in strategies]
    return strategies, [r.update for r in used], fractions


def plot_strategy_usage(strategies: Sequence[str], updates: Sequence[int],
                        fractions: Sequence[Sequence[float]]) -> Figure:
    """A heat map of :func:`usage_fractions`, with a colour bar."""
    fig = Figure(figsize=(10, 1.5 + 0.35 * len(strategies)), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(fractions, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    # Columns are positions in ``updates``; label the ticks with the update numbers themselves.
    ax.xaxis.set_major_locator(MaxNLocator(nbins=12, integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: str(updates[int(x)]) if 0 <= x < len(updates) else ""))
    ax.set_yticks(range(len(strategies)), strategies)
    ax.set(title="Strategy usage per update", xlabel="update")
    fig.colorbar(image, ax=ax, label="fraction of decisions")
    return fig


def accuracy_by_strategies(records: Sequence[EvalRecord]) -> dict[int, tuple[int, int]]:
    """Number of strategies in an episode -> (episodes, correct ones), pooled over ``records``."""
    buckets: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for record in records:
        for strategies, correct in record.episodes_detail:
            buckets[strategies][0] += 1
            buckets[strategies][1] += correct
    return {k: (n, c) for k, (n, c) in sorted(buckets.items())}


def plot_strategies_vs_accuracy(by_suite: dict[str, dict[int, tuple[int, int]]]) -> Figure:
    """Accuracy per number-of-strategies bucket, one series per suite, with Wilson 95% CIs and counts."""
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    width = 0.6 / len(by_suite)
    for index, (suite, buckets) in enumerate(by_suite.items()):
        xs = [k + (index - (len(by_suite) - 1) / 2) * width for k in buckets]
        accuracy = [c / n for n, c in buckets.values()]
        intervals = [wilson_interval(c, n) for n, c in buckets.values()]
        ax.errorbar(xs, accuracy, yerr=_yerr(accuracy, intervals), fmt="o", capsize=3, label=suite)
        for x, a, (n, _) in zip(xs, accuracy, buckets.values()):
            ax.annotate(f"n={n}", (x, a), textcoords="offset points", xytext=(4, 4), fontsize="x-small")
    ax.set_xticks(sorted({k for buckets in by_suite.values() for k in buckets}))
    ax.set(title="Accuracy by strategies per episode (last evaluation)", xlabel="strategies injected in the episode",
           ylabel="accuracy", ylim=(-0.02, 1.08))
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def plot_continual(result: ContinualResult) -> Figure:
    """Accuracy on each suite (columns) after each stage (rows), annotated with the values."""
    fig = Figure(figsize=(3 + 1.6 * len(result.suites), 1.8 + 0.7 * len(result.stages)), layout="constrained")
    ax = fig.subplots()
    grid = np.ma.masked_invalid(np.array(result.accuracy, dtype=float))  # None (not evaluated) -> masked
    image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1)
    for (i, j), value in np.ndenumerate(grid.filled(np.nan)):
        label, colour = ("n/a", "0.4") if np.isnan(value) else (f"{value:.0%}", "white" if value < 0.6 else "black")
        ax.text(j, i, label, ha="center", va="center", color=colour)
    ax.set_xticks(range(len(result.suites)), result.suites, rotation=30, ha="right")
    ax.set_yticks(range(len(result.stages)), [f"{i}: {s}" for i, s in enumerate(result.stages)])
    ax.set(title="Accuracy after each stage", xlabel="evaluated suite", ylabel="after stage")
    fig.colorbar(image, ax=ax, label="accuracy")
    return fig


# ---------------------------------------------------------------------------------------------- Markdown


def _percent_ci(value: float, ci: Sequence[float] | None) -> str:
    """``"55.0% (45.0% to 64.6%)"``, the format of :func:`agents.evaluation.markdown_table`."""
    return f"{value:.1%}" + (f" ({ci[0]:.1%} to {ci[1]:.1%})" if ci else "")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _image(alt: str, path: Path, report_dir: Path) -> str:
    return f"![{alt}]({path.relative_to(report_dir).as_posix()})"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]) + "\n"


def summary_section(run: Run) -> str:
    """Updates, episodes, wall time and the last update's numbers."""
    if not run.train:
        metrics = run.directory / "metrics.jsonl"
        why = ("the run directory has no metrics.jsonl" if not metrics.exists() else
               "metrics.jsonl is empty" if not metrics.read_text(encoding="utf-8").strip() else
               "metrics.jsonl has no train lines")
        return f"## Run summary\n\nNo updates were recorded ({why}).\n"
    train = run.train
    stages = list(dict.fromkeys((r.stage, r.suite) for r in train))
    seconds = sum(r.seconds_per_update or 0.0 for r in train)
    speeds = [r.tokens_per_second for r in train if r.tokens_per_second is not None]
    last = train[-1]
    lines = [
        f"- Updates: {len(train)} (update {train[0].update} to {last.update})",
        f"- Episodes: {sum(r.episodes for r in train)}",
        f"- Wall time (sum of seconds per update): {_duration(seconds)}",
    ]
    if len(stages) > 1:
        lines.append(f"- Stages: {' → '.join(suite or str(stage) for stage, suite in stages)}")
    if speeds:
        lines.append(f"- Mean throughput: {sum(speeds) / len(speeds):.0f} tokens/s")
    rewards = (("planner reward", last.planner_reward), ("reasoner reward", last.reasoner_reward))
    numbers = [f"{label} {value:.3f}" for label, value in rewards if value is not None]
    numbers += [f"accuracy {last.accuracy:.1%}"] if last.accuracy is not None else []
    if numbers:
        lines.append(f"- Last update: {', '.join(numbers)}")
    return "## Run summary\n\n" + "\n".join(lines) + "\n"


def comparison_sentence(rows: Sequence[SimpleNamespace]) -> str:
    """What the 95% accuracy intervals say about the trained planner against the others on its suite
    and split. Disjoint intervals show a difference; overlapping ones do not rule one out."""
    trained = next((r for r in rows if r.planner not in BASELINE_PLANNERS), None)
    if trained is None:
        return "The final evaluation holds baseline planners only; there is no trained planner to compare."
    others = [r for r in rows if r is not trained and (r.env_id, r.split) == (trained.env_id, trained.split)]
    if not others:
        return f"The trained planner {trained.planner} was evaluated alone; there is no baseline to compare it with."
    verdicts: dict[str, list[str]] = {"better than": [], "worse than": [], "not shown to differ from": []}
    for other in others:
        if trained.accuracy_ci[0] > other.accuracy_ci[1]:
            verdicts["better than"].append(other.planner)
        elif trained.accuracy_ci[1] < other.accuracy_ci[0]:
            verdicts["worse than"].append(other.planner)
        else:
            verdicts["not shown to differ from"].append(other.planner)
    compared = ", ".join(f"{o.planner} {_percent_ci(o.accuracy, o.accuracy_ci)}" for o in others)
    conclusion = " and ".join(f"{verdict} {' and '.join(names)}" for verdict, names in verdicts.items() if names)
    overlap = " (the intervals overlap)" if verdicts["not shown to differ from"] else ""
    return (f"On {trained.env_id} ({trained.split} split), the trained planner `{trained.planner}` reached "
            f"{_percent_ci(trained.accuracy, trained.accuracy_ci)} accuracy against {compared}; "
            f"at 95% confidence it is {conclusion}{overlap}.")


def comparison_section(rows: Sequence[SimpleNamespace]) -> str:
    """The final-evaluation table and its one-sentence reading."""
    if not rows:
        return "## Final comparison\n\nNo final evaluation (final_eval.json) in this run.\n"
    return "## Final comparison\n\n" + markdown_table(rows) + "\n" + comparison_sentence(rows) + "\n"


def curves_section(run: Run, plots: Path) -> str:
    path = plots / "curves.png"
    _save(plot_curves(run.train, run.evals), path)
    note = " Dotted lines mark the start of each continual-learning stage." if _stage_starts(run.train) else ""
    return ("## Reward and accuracy\n\n" + _image("Reward and accuracy per update", path, run.directory) +
            f"\n\nEvaluation accuracy has 95% confidence intervals.{note}\n")


def usage_section(run: Run, plots: Path) -> str:
    strategies, updates, fractions = usage_fractions(run.train)
    if not updates:
        return "## Strategy usage\n\nNo planner decisions were recorded.\n"
    path = plots / "strategy_usage.png"
    _save(plot_strategy_usage(strategies, updates, fractions), path)
    return "## Strategy usage\n\n" + _image("Strategy usage per update", path, run.directory) + "\n"


def strategies_section(run: Run, plots: Path) -> str:
    """Accuracy by strategies per episode, from the evaluation at the last evaluated update."""
    detailed = [r for r in run.evals if r.episodes_detail]
    if not detailed:
        return ""
    last_update = max(r.update for r in detailed)
    by_suite = {suite: accuracy_by_strategies(records)
                for suite, records in _by_suite([r for r in detailed if r.update == last_update]).items()}
    path = plots / "strategies_vs_accuracy.png"
    _save(plot_strategies_vs_accuracy(by_suite), path)
    rows = [(suite, k, n, _percent_ci(c / n, wilson_interval(c, n)))
            for suite, buckets in by_suite.items() for k, (n, c) in buckets.items()]
    return (f"## Strategies per episode and accuracy\n\nFrom the evaluation at update {last_update}.\n\n" +
            _image("Accuracy by strategies per episode", path, run.directory) + "\n\n" +
            _table(("suite", "strategies", "episodes", "accuracy (95% CI)"), rows))


def continual_section(run: Run, plots: Path) -> str:
    """Accuracy on every suite after every stage, and forgetting per suite."""
    result = run.continual
    if result is None:
        return ""
    rows = [[f"{i}: {stage}"] + [_continual_cell(result, i, j) for j in range(len(result.suites))]
            for i, stage in enumerate(result.stages)]
    forgetting = ["–" if f is None else f"{100 * f:+.1f} pp" for f in result.forgetting()]
    transfer = any("†" in cell for row in rows for cell in row)
    path = plots / "continual.png"
    _save(plot_continual(result), path)
    return ("## Transfer and forgetting\n\n" + _table(["after stage", *result.suites], rows) + "\n" +
            _table(["forgetting", *result.suites], [["best earlier − final", *forgetting]]) + "\n" +
            ("† before the planner trained on that suite (transfer). " if transfer else "") +
            "Forgetting is the best accuracy after an earlier stage minus the accuracy after the last stage; "
            "negative means later stages helped; – where a suite lacks either.\n\n" +
            _image("Accuracy on each suite after each stage", path, run.directory) + "\n")


def _continual_cell(result: ContinualResult, stage: int, suite: int) -> str:
    """Accuracy with its interval; † where the planner had not yet trained on the suite."""
    value = result.accuracy[stage][suite]
    if value is None:
        return "–"
    ci = result.accuracy_ci[stage][suite] if result.accuracy_ci else None
    name = result.suites[suite]
    before_training = name in result.stages and stage < result.stages.index(name)
    return _percent_ci(value, ci) + (" †" if before_training else "")


def config_section(config_text: str | None) -> str:
    if config_text is None:
        return "## Config\n\nNo config.yaml in the run directory.\n"
    return ("## Config\n\n<details><summary>config.yaml</summary>\n\n```yaml\n" + config_text.rstrip("\n") +
            "\n```\n\n</details>\n")


def write_report(run_dir: str | Path, *, title: str | None = None) -> Path:
    """Write ``report.md`` and its plots (under ``plots/``) into ``run_dir``; returns the report's path."""
    run = load_run(run_dir)
    plots = run.directory / PLOTS_DIR
    sections = [summary_section(run), comparison_section(run.final)]
    if run.train or run.evals:
        sections += [curves_section(run, plots), usage_section(run, plots), strategies_section(run, plots)]
    sections += [continual_section(run, plots), config_section(run.config_text)]
    heading = f"# {title or f'Training report: {run.directory.resolve().name}'}\n"
    path = run.directory / "report.md"
    write_text_atomic(path, "\n".join([heading, *filter(None, sections)]))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agents.training.report RUN_DIR [--title T]``: (re)write a run's report."""
    parser = argparse.ArgumentParser(prog="python -m agents.training.report", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="the run directory the trainer wrote")
    parser.add_argument("--title", default=None, help="report heading (default: the run directory's name)")
    args = parser.parse_args(argv)
    try:
        print(f"Wrote {write_report(args.run_dir, title=args.title)}")
    except RSIMError as err:
        print(f"report: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
