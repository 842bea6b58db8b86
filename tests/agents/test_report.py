"""The end-of-run report: Markdown tables with the right numbers, readable PNGs, honest failures."""

import json
import re

import matplotlib.image
import pytest

from agents.evaluation import wilson_interval
from agents.training.report import (
    ContinualResult,
    RunFileError,
    TrainRecord,
    main,
    usage_fractions,
    write_report,
)

ARITH, GSM = "rsim/Arithmetic-v0", "rsim/GSM8K-v0"
STRATEGIES = ("continue", "decompose", "verify")
CONFIG = "planner: mlp\nsuites:\n- rsim/Arithmetic-v0\n- rsim/GSM8K-v0\nupdates: 3\nseed: 0\n"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def train_line(update, stage, suite):
    return {"kind": "train", "update": update, "stage": stage, "suite": suite, "episodes": 8,
            "planner_reward": 0.1 * update, "reasoner_reward": 0.05 * update, "accuracy": 0.1 + 0.1 * update,
            "strategy_usage": {"continue": 6 - update, "decompose": update, "verify": 2},
            "strategies_per_episode": 1.0, "kl": None, "planner_entropy": 1.0 - 0.1 * update,
            "tokens_per_second": 100.0, "seconds_per_update": 10.0, "planner_loss": 0.5, "reasoner_loss": None}


def eval_line(update, stage, suite, detail):
    correct = sum(c for _, c in detail)
    return {"kind": "eval", "update": update, "stage": stage, "suite": suite, "split": "test",
            "accuracy": correct / len(detail), "accuracy_ci": list(wilson_interval(correct, len(detail))),
            "planner_reward": 0.3, "strategies_per_episode": sum(s for s, _ in detail) / len(detail),
            "episodes_detail": [{"strategies": s, "correct": c} for s, c in detail]}


# The last evaluation (update 5) on Arithmetic: 0 strategies 1/4 correct, 1 strategy 3/3, 2 strategies 1/2.
LAST_ARITH = [(0, True), (0, False), (0, False), (0, False), (1, True), (1, True), (1, True), (2, True), (2, False)]
LAST_GSM = [(0, False), (1, True), (1, False), (2, True)]

FINAL = [
    {"planner": "trained (mlp)", "accuracy": 0.75, "accuracy_ci": [0.60, 0.86]},
    {"planner": "none", "accuracy": 0.55, "accuracy_ci": [0.40, 0.69]},
    {"planner": "random", "accuracy": 0.30, "accuracy_ci": [0.18, 0.45]},
]
CONTINUAL = {"stages": [ARITH, GSM], "suites": [ARITH, GSM], "accuracy": [[0.8, 0.3], [0.6, 0.7]],
             "accuracy_ci": [[[0.7, 0.9], [0.2, 0.4]], [[0.5, 0.7], [0.6, 0.8]]]}


def final_row(planner, accuracy, accuracy_ci):
    return {"env_id": GSM, "planner": planner, "reasoner": "smollm2-135m-instruct", "split": "test", "episodes": 40,
            "accuracy": accuracy, "accuracy_ci": accuracy_ci, "planner_reward": accuracy - 0.1,
            "planner_reward_ci": [accuracy - 0.2, accuracy], "reasoner_reward": accuracy,
            "tokens_per_episode": 180.0, "strategies_per_episode": 1.5, "strategy_usage": {"continue": 3},
            "seconds": 12.0}


@pytest.fixture
def run_dir(tmp_path):
    """A two-stage continual run: 3 updates on Arithmetic, then 3 on GSM8K, evaluated after each stage."""
    lines = [train_line(u, 0, ARITH) for u in range(3)]
    lines.append(eval_line(2, 0, ARITH, [(0, True), (1, False), (1, True)]))
    lines += [train_line(u, 1, GSM) for u in range(3, 6)]
    lines += [eval_line(5, 1, ARITH, LAST_ARITH), eval_line(5, 1, GSM, LAST_GSM)]
    lines.append({"kind": "checkpoint", "update": 5})  # other kinds are ignored
    (tmp_path / "config.yaml").write_text(CONFIG)
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (tmp_path / "final_eval.json").write_text(json.dumps([final_row(**row) for row in FINAL]))
    (tmp_path / "continual.json").write_text(json.dumps(CONTINUAL))
    return tmp_path


def linked_files(report_text):
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report_text)


def test_report_links_readable_pngs(run_dir):
    report = write_report(run_dir)

    links = linked_files(report.read_text())
    assert links == ["plots/curves.png", "plots/strategy_usage.png", "plots/strategies_vs_accuracy.png",
                     "plots/continual.png"]
    for link in links:
        png = run_dir / link
        assert png.read_bytes().startswith(PNG_SIGNATURE)
        assert png.stat().st_size > 10_000
        height, width, channels = matplotlib.image.imread(png).shape
        assert height > 200 and width > 300 and channels in (3, 4)


def test_summary_counts_updates_episodes_and_wall_time(run_dir):
    text = write_report(run_dir, title="Two stages").read_text()

    assert text.startswith("# Two stages\n")
    assert "- Updates: 6 (update 0 to 5)" in text
    assert "- Episodes: 48" in text
    assert "- Wall time (sum of seconds per update): 1 min 00 s" in text
    assert f"- Stages: {ARITH} → {GSM}" in text


def test_final_comparison_table_and_sentence(run_dir):
    text = write_report(run_dir).read_text()

    assert "| trained (mlp) | smollm2-135m-instruct | 40 | 75.0% (60.0% to 86.0%) | 0.650 (0.550 to 0.750) |" in text
    assert "| none | smollm2-135m-instruct | 40 | 55.0% (40.0% to 69.0%) |" in text
    # 60-86% is clear of random's 18-45% but overlaps none's 40-69%.
    assert ("the trained planner `trained (mlp)` reached 75.0% (60.0% to 86.0%) accuracy against "
            "none 55.0% (40.0% to 69.0%), random 30.0% (18.0% to 45.0%); at 95% confidence it is "
            "better than random and not shown to differ from none (the intervals overlap).") in text


def test_strategies_table_buckets_last_evaluation(run_dir):
    text = write_report(run_dir).read_text()

    assert "From the evaluation at update 5." in text
    lo, hi = wilson_interval(1, 4)
    assert f"| {ARITH} | 0 | 4 | 25.0% ({lo:.1%} to {hi:.1%}) |" in text
    lo, hi = wilson_interval(3, 3)
    assert f"| {ARITH} | 1 | 3 | 100.0% ({lo:.1%} to 100.0%) |" in text
    assert f"| {GSM} | 1 | 2 | 50.0% (" in text


def test_transfer_and_forgetting_tables(run_dir):
    text = write_report(run_dir).read_text()

    assert f"| after stage | {ARITH} | {GSM} |\n|---|---|---|\n" in text
    assert f"| 0: {ARITH} | 80.0% (70.0% to 90.0%) | 30.0% (20.0% to 40.0%) † |" in text
    assert f"| 1: {GSM} | 60.0% (50.0% to 70.0%) | 70.0% (60.0% to 80.0%) |" in text
    # Arithmetic: 80% after stage 0, 60% at the end -> forgot 20 points; GSM8K rose from 30% to 70%.
    assert "| best earlier − final | +20.0 pp | -40.0 pp |" in text


def test_forgetting_skips_suites_not_evaluated():
    result = ContinualResult(stages=["a", "b", "c"], suites=["a", "b", "c"],
                             accuracy=[[0.5, None, None], [0.9, 0.4, None], [0.6, 0.5, 0.7]])

    assert result.forgetting() == pytest.approx([0.3, -0.1, None])


def test_usage_fractions_per_update():
    train = [TrainRecord(update=0, strategy_usage={"continue": 3, "verify": 1}),
             TrainRecord(update=1),  # no decisions (e.g. reasoner-only): no column
             TrainRecord(update=2, strategy_usage={"verify": 2, "decompose": 2})]

    strategies, updates, fractions = usage_fractions(train)

    assert strategies == ["continue", "verify", "decompose"]
    assert updates == [0, 2]
    assert fractions == [[0.75, 0.0], [0.25, 0.5], [0.0, 0.5]]


def test_config_shown_verbatim(run_dir):
    text = write_report(run_dir).read_text()

    assert "```yaml\n" + CONFIG + "```" in text


def test_empty_metrics_says_no_updates(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("")

    text = write_report(tmp_path).read_text()

    assert "No updates were recorded (metrics.jsonl is empty)." in text
    assert "No final evaluation (final_eval.json) in this run." in text
    assert linked_files(text) == []


def test_malformed_line_names_its_number(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    lines[2] = '{"kind": "train", "update": 2,'
    (run_dir / "metrics.jsonl").write_text("\n".join(lines))

    with pytest.raises(RunFileError, match=r"metrics.jsonl, line 3: not valid JSON"):
        write_report(run_dir)


def test_line_without_update_names_its_number(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps(train_line(0, 0, ARITH)) + "\n\n" + '{"kind": "eval"}\n')

    with pytest.raises(RunFileError, match=r"line 3: a 'eval' line needs an integer 'update'"):
        write_report(tmp_path)


def test_cli_regenerates_report(run_dir, capsys):
    assert main([str(run_dir), "--title", "Again"]) == 0
    assert (run_dir / "report.md").read_text().startswith("# Again\n")
    (run_dir / "continual.json").write_text('{"stages": ["a"]}')
    assert main([str(run_dir)]) == 2
    assert "continual.json: expected an object with 'stages', 'suites' and 'accuracy'" in capsys.readouterr().err
