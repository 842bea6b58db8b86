"""The LLM benchmarks run end to end on tiny-random and measure what they claim to measure."""

from __future__ import annotations

import json

from benchmarks import throughput, trl_comparison


def test_throughput_benchmark_writes_its_three_ratios(tmp_path):
    out = tmp_path / "throughput.json"
    throughput.main(["--model", "tiny-random", "--batch", "2", "--tokens", "8", "--steps", "2", "--repeats", "1",
                     "--out", str(out)])
    result = json.loads(out.read_text())
    assert set(result["ratios"]) == {"stepwise_over_generate", "batched_over_sequential", "kv_reuse_over_full_reencode"}
    assert all(r > 0 for r in result["ratios"].values())
    assert set(result["seconds"]) == {"generate", "stepwise", "stepwise_full_reencode", "stepwise_sequential"}


def test_trl_comparison_runs_both_trainers_on_the_same_work(tmp_path):
    out = tmp_path / "trl.json"
    result = trl_comparison.main(["--model", "tiny-random", "--prompts", "2", "--group-size", "2", "--tokens", "8",
                                  "--updates", "2", "--warmup", "0", "--out", str(out)])
    assert json.loads(out.read_text())["rsim_over_trl_seconds"] == result["rsim_over_trl_seconds"] > 0
    for side in ("rsim", "trl"):
        assert len(result[side]["updates"]) == 2
        # 2 prompts x 2 completions x exactly 8 tokens: stopping rules are off on both sides
        assert result[side]["generated_tokens_per_update"] == 2 * 2 * 8
        assert result[side]["seconds_per_update"] > 0
