"""`rsim eval`: intervals, results files, option errors, and real episodes with the embedded model."""

import json

import pytest

from agents.cli import main as rsim
from agents.evaluation import wilson_interval

CHAIN_SUM_EASY = "suite_kwargs={min_terms: 2, max_terms: 2, max_digits: 2}"


def test_wilson_interval_hand_values():
    # n = 10, z = 1.96: centre (p + z²/2n) / (1 + z²/n), half-width z sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_eval_writes_json_and_markdown_for_each_planner(tmp_path, capsys):
    out = tmp_path / "eval"
    assert rsim(["eval", "--suite", "arithmetic", "--planner", "none", "fixed:verification", "--reasoner", "tiny-random",
                 "--episodes", "5", "--batch-size", "2", "--max-steps", "2", "--max-new-tokens", "4",
                 "--env-option", "rewards={terminal: 0.25}", "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["results.json", "results.md"]  # no temporary files left
    results = json.loads((out / "results.json").read_text())
    assert [r["planner"] for r in results] == ["none", "fixed:verification"]
    for r in results:
        assert r["episodes"] == len(r["per_episode"]) == 5
        correct = sum(e["correct"] for e in r["per_episode"])
        assert r["accuracy"] == correct / 5 and r["accuracy_ci"] == list(wilson_interval(correct, 5))
        assert 1 <= r["strategies_per_episode"] <= 2
    assert results[1]["strategy_usage"]["verification"] == 5  # step 1 verification, step 2 forced termination
    table = (out / "results.md").read_text()
    assert "| rsim/Arithmetic-v0 | fixed:verification | tiny-random | 5 |" in table
    assert "accuracy (95% CI)" in capsys.readouterr().out


@pytest.mark.parametrize("option, message", [("max_steps", "KEY=VALUE"), ("not_an_option=1", "not_an_option"),
                                             ("suite_kwargs={bogus: 1}", "bogus")])
def test_eval_refuses_bad_env_options_with_a_message(tmp_path, capsys, option, message):
    code = rsim(["eval", "--suite", "arithmetic", "--reasoner", "tiny-random", "--episodes", "1",
                 "--env-option", option, "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.real_model
def test_embedded_model_completes_chain_sum_episodes(tmp_path):
    out = tmp_path / "eval"
    assert rsim(["eval", "--suite", "chain_sum", "--env-option", CHAIN_SUM_EASY, "--planner", "random",
                 "--reasoner", "smollm2-135m-instruct", "--episodes", "4", "--batch-size", "4", "--max-steps", "2",
                 "--max-new-tokens", "32", "--out", str(out), "--quiet"]) == 0
    result = json.loads((out / "results.json").read_text())[0]
    assert result["reasoner"] == "smollm2-135m-instruct" and result["episodes"] == 4
    for episode in result["per_episode"]:
        assert episode["generated_tokens"] > 0 and 1 <= len(episode["strategies"]) <= 2
        assert episode["ended_by"] in {"termination", "answer", "truncated"}
        assert isinstance(episode["correct"], bool) and episode["reference"]
