"""The `rsim` command line: listings, `play` with the simulated and an LLM reasoner, clear errors."""

import io

import pytest

import rsim_env
from agents.cli import main as rsim


def test_listings_name_every_registered_item(capsys):
    assert rsim(["suites"]) == 0
    listed = capsys.readouterr().out
    assert all(spec.name in listed for spec in rsim_env.tasks.list_suites())
    assert rsim(["envs"]) == 0
    listed = capsys.readouterr().out
    assert all(env_id in listed for env_id in rsim_env.list_envs())
    assert rsim(["strategies"]) == 0
    listed = capsys.readouterr().out
    for index, strategy in enumerate(rsim_env.StrategySet.default()):
        assert f"{index:<7d}{strategy.name}" in listed


def test_play_with_the_simulated_reasoner(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("nonsense\nverification\n"))
    assert rsim(["play", "--env", "rsim/Sim-v0", "--max-steps", "2", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "not a legal strategy here: 'nonsense'" in out
    assert "Strategies: verification, termination" in out
    assert "Rewards: planner" in out and "reference answer:" in out


def test_play_stops_when_the_player_quits(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("q\n"))
    assert rsim(["play", "--seed", "0"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("bye")


def test_play_with_an_llm_reasoner_on_a_math_suite(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("decomposition\n"))
    assert rsim(["play", "--env", "rsim/ChainSum-v0", "--reasoner", "tiny-random", "--max-steps", "2",
                 "--max-new-tokens", "4", "--env-option", "suite_kwargs={max_terms: 2}", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert out.count("  reasoner: ") == 2  # one step under decomposition, one forced final step
    assert "Strategies: decomposition, termination" in out
    assert "termination (the only legal strategy now)" in out


@pytest.mark.parametrize("argv, message", [
    (["play", "--env", "rsim/ChainSum-v0"], "simulated reasoner only plays the simulated suite"),
    (["play", "--env", "rsim/NoSuch-v0"], "Unknown environment id"),
    (["eval", "--suite", "no_such_suite", "--reasoner", "tiny-random"], "No registered environment for suite"),
])
def test_bad_arguments_exit_2_with_a_message(capsys, argv, message):
    assert rsim(argv) == 2
    assert message in capsys.readouterr().err
