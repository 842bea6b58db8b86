"""The sandbox throughput benchmark runs end to end and writes its JSON atomically."""

from __future__ import annotations

import json

import pytest

from benchmarks import sandbox_throughput


@pytest.mark.sandbox
def test_benchmark_reports_serial_and_pool_rates(tmp_path, capsys):
    out = tmp_path / "nested" / "throughput.json"
    returned = sandbox_throughput.main(["--n", "6", "--workers", "2", "--out", str(out)])
    written = json.loads(out.read_text())
    assert written == returned
    assert written["serial"]["runs"] == written["pool"]["runs"] == 6
    assert written["serial"]["runs_per_s"] > 0 and written["pool"]["runs_per_s"] > 0
    assert written["pool_over_serial"] == round(written["pool"]["runs_per_s"] / written["serial"]["runs_per_s"], 2)
    assert "pool / serial" in capsys.readouterr().out
    assert [p.name for p in out.parent.iterdir()] == ["throughput.json"]  # no temp file left
