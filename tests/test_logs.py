"""`--log-format json`: one JSON object per log line, carrying the ids of the run, shard, rule and
message it is about, and never a full mobile number or e-mail address."""

from __future__ import annotations

import io
import json
import logging

from click.testing import CliRunner

from campaign_engine import logs
from campaign_engine.cli import main

APPROVAL_OFF = {"CAMPAIGN_ENGINE_APPROVAL": "off"}


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_run_and_a_failing_send_log_json_lines_with_their_ids_and_masked_contacts(settings, engine, tmp_path):
    env = {"CAMPAIGN_ENGINE_DATABASE_URL": settings.database_url, **APPROVAL_OFF,
           # a gateway nobody answers at: every SMS send fails and is retried later
           "CAMPAIGN_ENGINE_CHANNELS": json.dumps({"sms": {"type": "http_sms", "url": "http://127.0.0.1:9/send",
                                                           "timeout": 1},
                                                   "email": {"type": "file", "path": str(tmp_path / "e.jsonl")}}),
           "CAMPAIGN_ENGINE_QUIET_HOURS": "{}", "CAMPAIGN_ENGINE_SEND_RATES": json.dumps({"sms": 0, "email": 0})}
    runner = CliRunner()

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    assert invoke("demo-data", "--customers", "300", "--date", "2026-03-10").exit_code == 0
    assert invoke("rules", "publish", "--all", "--note", "starter", "--as", "marketer").exit_code == 0
    ran = invoke("--log-format", "json", "-v", "run", "--all", "--date", "2026-03-10")
    assert ran.exit_code == 0, ran.output
    lines = _json_lines(ran.stderr)
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    accepted = next(line for line in lines if "accepted" in line["message"])
    run_id = int(accepted["message"].split()[1])
    per_rule = [line for line in lines if line.get("rule_id")]
    assert {line["rule_id"] for line in per_rule} >= {"birthday-greeting", "td-maturity-reminder"}
    assert all(line["run_id"] == run_id and isinstance(line["shard"], int) for line in per_rule)
    sent = invoke("--log-format", "json", "-v", "send", "--once")
    failures = [line for line in _json_lines(sent.stderr) if "send failed" in line["message"]]
    assert failures, sent.stderr[-2000:]
    assert all(isinstance(line["message_id"], int) for line in failures)
    text = ran.stderr + sent.stderr
    for line in _json_lines(text):
        assert not logs._MOBILE.search(line["message"]) and "@example" not in line["message"]
    plain = invoke("-v", "send", "--once")  # without the option: text lines, as before
    assert not _json_lines(plain.stderr)


def test_json_lines_carry_bound_and_extra_ids_and_mask_what_slips_through():
    stream = io.StringIO()
    logs.configure("json", logging.INFO, stream=stream)
    try:
        log = logging.getLogger("campaign_engine.test")
        with logs.bound(run_id=7, shard=2):
            with logs.bound(rule_id="birthday-greeting"):
                log.warning("to 13812345678 and li.na@example.com (+8613912345678)", extra={"message_id": 42})
            log.info("outside the rule")
        log.info("no ids here")
        try:
            raise RuntimeError("smtp said 550 wang.fang@bank.example unknown")
        except RuntimeError:
            log.exception("send failed")
    finally:
        logs.configure("text", logging.WARNING)
    first, second, third, fourth = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert {k: first[k] for k in ("run_id", "shard", "rule_id", "message_id", "level")} == {
        "run_id": 7, "shard": 2, "rule_id": "birthday-greeting", "message_id": 42, "level": "warning"}
    assert "13812345678" not in first["message"] and "138****5678" in first["message"]
    assert "li.na@example.com" not in first["message"] and "139****5678" in first["message"]
    assert second["run_id"] == 7 and "rule_id" not in second
    assert "run_id" not in third
    assert "wang.fang@bank.example" not in fourth["exception"] and "RuntimeError" in fourth["exception"]
