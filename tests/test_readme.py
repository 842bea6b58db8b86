"""The README stays true: its quickstart runs, CI runs its test command, its commands exist."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def test_quickstart_runs_and_plays_an_episode():
    quickstart = blocks("python")[0]
    result = subprocess.run([sys.executable, "-c", quickstart], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "Final answer:" in result.stdout and "ended by termination" in result.stdout


def test_ci_runs_the_readme_test_command_and_the_main_job_is_rsim_train():
    test_command, main_job = (block.strip() for block in blocks("bash")[:2])
    assert test_command == "bash scripts/setup.sh && python3 -m pytest"
    assert test_command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert main_job == "bash scripts/setup.sh && rsim train"


def test_every_rsim_subcommand_in_the_readme_exists():
    from agents.cli import build_parser

    subparsers = next(a for a in build_parser()._actions if a.dest == "command" or getattr(a, "choices", None))
    code = "\n".join(re.findall(r"```\w*\n(.*?)```", README, re.S))
    mentioned = set(re.findall(r"^(?:.*&& )?rsim (\w+)", code, re.M)) | set(re.findall(r"`rsim (\w+)", README))
    assert mentioned and mentioned <= set(subparsers.choices), mentioned - set(subparsers.choices)
