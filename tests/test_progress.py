"""Long commands show their progress: a bar with rate and time left on a terminal (a real
pseudo-terminal here), a line per tenth otherwise, nothing with --quiet, and never in the
standard output that --json writes."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from campaign_engine.progress import Progress

CLI = str(Path(sys.executable).parent / "campaign-engine")


@pytest.fixture
def cli_env(tmp_path):
    db = tmp_path / "progress.db"
    env = {**os.environ, "CAMPAIGN_ENGINE_DATABASE_URL": f"sqlite:///{db}", "CAMPAIGN_ENGINE_APPROVAL": "off",
           "CAMPAIGN_ENGINE_CHANNELS": json.dumps({"sms": {"type": "file", "path": str(tmp_path / "s.jsonl")},
                                                   "email": {"type": "file", "path": str(tmp_path / "e.jsonl")}}),
           "CAMPAIGN_ENGINE_QUIET_HOURS": "{}", "CAMPAIGN_ENGINE_SEND_RATES": "{}", "COLUMNS": "120",
           "CAMPAIGN_ENGINE_PROGRESS_AFTER": "0"}  # these jobs are quick: their lines from the start
    subprocess.run([CLI, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=120)
    return env


def on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run the CLI with stdout and stderr on a pseudo-terminal; everything it showed."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a 120x40 terminal
    process = subprocess.Popen(args, env=env, stdin=follower, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    shown = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the other side closed: the command ended
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert process.wait(timeout=60) == 0, shown.decode(errors="replace")[-2000:]
    return shown.decode("utf-8", errors="replace")


def test_a_terminal_shows_a_bar_with_rate_and_time_left(cli_env):
    shown = on_a_terminal([CLI, "demo-data", "--customers", "12000", "--date", "2026-03-10"], cli_env)
    assert "demo-data customers" in shown and "100%" in shown
    assert "rows/s" in shown and "12.0k/12.0k" in shown  # the rate, and done/total
    assert "\r" in shown  # a bar redrawn in place, not lines
    quiet = on_a_terminal([CLI, "demo-data", "--customers", "300", "--quiet"], cli_env)
    assert "demo-data customers" not in quiet and "loaded" in quiet


def test_without_a_terminal_a_line_per_tenth_and_json_output_stays_clean(cli_env):
    loaded = subprocess.run([CLI, "demo-data", "--customers", "30000", "--date", "2026-03-10"], env=cli_env,
                            capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    lines = [line for line in loaded.stderr.splitlines() if line.startswith("demo-data customers")]
    assert any("%" in line and "rows/s" in line and "left" in line for line in lines), loaded.stderr
    assert lines[-1].startswith("demo-data customers: done, 30,000 rows in")
    assert "\r" not in loaded.stderr and "demo-data" not in loaded.stdout
    subprocess.run([CLI, "rules", "publish", "--all", "--as", "demo", "--note", "starter"], env=cli_env,
                   check=True, capture_output=True, timeout=120)
    ran = subprocess.run([CLI, "run", "--all", "--date", "2026-03-10", "--json"], env=cli_env,
                         capture_output=True, text=True, timeout=300)
    report = json.loads(ran.stdout)  # standard output is the report alone
    assert report["status"] == "completed"
    assert f"run {report['run_id']}: done, 1 shard(s)" in ran.stderr
    sent = subprocess.run([CLI, "send", "--once"], env=cli_env, capture_output=True, text=True, timeout=300)
    queued = sum(r["queued"] for r in report["rules"])
    assert f"send: done, {queued:,} messages" in sent.stderr and f"sent {queued}" in sent.stdout
    quiet = subprocess.run([CLI, "run", "--all", "--date", "2026-03-11", "--json", "--quiet"], env=cli_env,
                           capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and "run " not in quiet.stderr


def test_progress_lines_come_every_tenth_with_rate_and_time_left(monkeypatch):
    import campaign_engine.progress as progress

    monkeypatch.setattr(progress, "QUIET_FOR", 0.0)
    out = io.StringIO()
    with Progress("import customers", 1000, stream=out, tty=False) as bar:
        for done in range(0, 1001, 50):
            bar.update(done)
    lines = out.getvalue().splitlines()
    assert [line.split(":")[1].split("%")[0].strip() for line in lines[:-1]] == [
        "10", "20", "30", "40", "50", "60", "70", "80", "90"]
    assert all("rows/s" in line and "left" in line for line in lines[:-1])
    assert lines[-1].startswith("import customers: done, 1,000 rows in")
    quiet = io.StringIO()
    with Progress("x", 10, stream=quiet, tty=False, quiet=True) as bar:
        bar.update(10)
    assert quiet.getvalue() == ""


def test_a_quick_job_without_a_terminal_prints_no_progress(monkeypatch):
    import campaign_engine.progress as progress

    monkeypatch.setattr(progress, "QUIET_FOR", 60.0)
    out = io.StringIO()
    with Progress("run 7", 3, stream=out, tty=False, unit="shard(s)") as bar:
        bar.update(3)
    assert out.getvalue() == ""
