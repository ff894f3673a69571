"""The README's first-day commands, run verbatim: `make run`, then "A day with the starter pack",
each line as written, on a fresh database of the test's own (never the repository's instance/)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from campaign_engine.settings import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def block_after(heading: str) -> list[str]:
    """The command lines of the first ```sh block after `heading` (comments dropped)."""
    start = README.index(heading)
    body = re.search(r"```sh\n(.*?)```", README[start:], re.S)
    assert body is not None, f"no sh block after {heading!r}"
    return [line.split("  #")[0].strip() for line in body.group(1).splitlines() if line.strip()]


@pytest.fixture
def fresh_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a new user's shell, pointed at a database and an outbox of the test's own."""
    db = f"sqlite:///{tmp_path / 'first-day.db'}"
    channels = {"sms": {"type": "file", "path": str(tmp_path / "outbox" / "sms.jsonl")},
                "email": {"type": "file", "path": str(tmp_path / "outbox" / "email.jsonl")}}
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_ENGINE_")}
    env.update(CAMPAIGN_ENGINE_DATABASE_URL=db, CAMPAIGN_ENGINE_CHANNELS=json.dumps(channels))
    return env


def run(line: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(line, shell=True, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=300, executable="/bin/bash")
    assert "Traceback" not in done.stderr, f"{line}\n{done.stderr}"
    return done


def test_readme_quick_start_and_a_day_with_the_starter_pack_run_verbatim(fresh_env, tmp_path):
    quick = block_after("## Quick start")
    assert quick[0] == "make run" and quick[1] == "make test"
    made = run("make run", fresh_env)  # `make test` is what runs this test: not run again from here
    assert made.returncode == 0, made.stdout + made.stderr
    assert "10000 customers" in made.stdout and "run 1 " in made.stdout

    day = block_after("A day with the starter pack")
    assert all(line.startswith(".venv/bin/campaign-engine ") for line in day), day
    outputs = {}
    for line in day:
        done = run(line, fresh_env)
        assert done.returncode == 0, f"{line}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        outputs[shlex.split(line)[1]] = done.stdout
    assert "0 problem(s)" in outputs["rules"]
    assert "D0000000401: MATCHES" in outputs["preview"]  # the README's sample customer's deposit, any day
    assert "diamond" in outputs["customers"]
    rerun = outputs["run"]
    assert " completed" in rerun.splitlines()[0]
    # the second run of the day writes nothing new: its matches are duplicates
    rows = [line.split() for line in rerun.splitlines() if line.startswith("td-maturity-reminder ")]
    assert rows and int(rows[0][6]) == int(rows[0][3]) > 0  # id, name, candidates, matched, queued, sched, dup
    assert "event" in outputs and "completed" in outputs["event"].splitlines()[0]
    assert "C00000053" in outputs["tasks"] and "电联" in outputs["tasks"] and "RM0012" in outputs["tasks"]
    assert outputs["runs"].count("\n") >= 3  # make run's, the rerun and the event
