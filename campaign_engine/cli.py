"""`campaign-engine` command line: thin commands over pipeline and store."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click

from .clock import utc_now
from .errors import CampaignEngineError, ConfigError, NotFound, Problem, ValidationFailed
from .settings import Settings, load_settings
from .store.db import DatabaseError
from .vocabulary import Role, RunStatus

if TYPE_CHECKING:
    from .pipeline import RunReport


def _now() -> dt.datetime:
    return utc_now()


def _today(settings: Settings, value: str | None) -> dt.date:
    if value:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a date YYYY-MM-DD", param_hint="--date") from None
    return _now().astimezone(settings.tz).date()


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2, default=str)


def _read_json(value: str) -> Any:
    """JSON text, or @path to a JSON file."""
    try:
        text = Path(value[1:]).read_text(encoding="utf-8-sig") if value.startswith("@") else value
        return json.loads(text)
    except OSError as exc:
        raise click.BadParameter(str(exc)) from None
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def _settings(ctx: click.Context) -> Settings:
    return ctx.ensure_object(dict).setdefault("settings", load_settings())


def _services(ctx: click.Context):  # type: ignore[no-untyped-def]
    """The pipeline's dependencies, closed when the command ends."""
    from .bootstrap import open_services

    services = open_services(_settings(ctx))
    ctx.call_on_close(services.close)
    return services


def _db(ctx: click.Context):  # type: ignore[no-untyped-def]
    """A database engine, disposed when the command ends."""
    from .store.db import make_engine

    engine = make_engine(_settings(ctx).database_url)
    ctx.call_on_close(engine.dispose)
    return engine


def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Domain errors become a clear message and exit status 2 (bad input) or 1."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ValidationFailed, NotFound) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except CampaignEngineError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except DatabaseError as exc:
            reason = getattr(exc, "orig", None) or exc
            click.echo(f"database error: {reason} (has `campaign-engine db upgrade` been run?)", err=True)
            sys.exit(1)
    return wrapper


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log progress (INFO) to stderr.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Rules-engine-driven marketing campaigns for a retail bank."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.ensure_object(dict)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@click.pass_context
@_guard
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Create or upgrade the schema with the Alembic migrations."""
    from .store.db import upgrade_database

    settings = _settings(ctx)
    upgrade_database(settings.database_url, revision)
    click.echo(f"database at revision {revision}")


@main.command("demo-data")
@click.option("--customers", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--date", "date_", help="Reference date for birthdays and maturities (default today).")
@click.pass_context
@_guard
def demo_data(ctx: click.Context, customers: int, seed: int, date_: str | None) -> None:
    """Load realistic demo customers, products, deposits and holdings."""
    from .demo.loader import load_demo_data

    settings = _settings(ctx)
    counts = load_demo_data(_db(ctx), customers, seed=seed, today=_today(settings, date_), now=_now(),
                            batch_size=max(settings.batch_size, 5000))
    click.echo(", ".join(f"{n} {kind}" for kind, n in counts.items()) + " loaded")


@main.command("import")
@click.argument("kind", type=click.Choice(["customers", "products", "deposits", "holdings"]))
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
@_guard
def import_(ctx: click.Context, kind: str, file: Path) -> None:
    """Upsert rows from a CSV file; bad rows are reported with their line, good rows kept."""
    from .store.csv_import import import_csv

    report = import_csv(_db(ctx), kind, file, now=_now())
    for problem in report.problems:
        click.echo(f"{problem}", err=True)
    click.echo(f"{kind}: {report.rows} row(s) read, {report.upserted} upserted, "
               f"{len(report.problems)} problem(s)")
    if not report.ok:
        sys.exit(1)


@main.group()
def rules() -> None:
    """Rule files."""


@rules.command("validate")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def rules_validate(ctx: click.Context, as_json: bool) -> None:
    """Check every rule file and render every template against a sample context."""
    from .pipeline import validate_rules
    from .rendering.environment import build_environment
    from .rulebook.loader import load_rulebook

    settings = _settings(ctx)
    rulebook = load_rulebook(settings.rules_dir, settings.templates_dir)
    problems = validate_rules(rulebook, build_environment(settings.templates_dir), settings)
    if as_json:
        click.echo(_json({"rules": sorted(rulebook.rules), "problems": [p.as_dict() for p in problems]}))
    else:
        for problem in problems:
            click.echo(str(problem), err=True)
        click.echo(f"{len(rulebook.rules)} rule(s) loaded, {len(problems)} problem(s)")
    if problems:
        sys.exit(1)


LEGEND = ("candidates: read by the rule's SQL; matched: passed its conditions; queued: in the outbox, due now; "
          "sched: in the outbox, due when the sending window opens; dup: already sent for this occurrence "
          "(written by an earlier run); failed: could not be rendered")


def _print_run(report: RunReport) -> None:
    head = f"run {report.run_id or '(dry run)'} {report.date.isoformat()} {report.status.value}"
    if report.replayed:
        head += " (event already handled: this is its first run)"
    shards = report.shards
    if shards and (shards.total > 1 or not report.finished):
        head += f" ({shards.completed}/{shards.total} shards completed"
        head += f", {shards.failed} failed)" if shards.failed else ")"
    click.echo(head)
    if report.error:
        click.echo(f"error: {report.error}")
    if not report.finished:
        click.echo(f"run {report.run_id} is running: `campaign-engine report {report.run_id}` shows where it stands")
        return
    click.echo(f"{'rule':32} {'candidates':>10} {'matched':>8} {'queued':>7} {'sched':>6} {'dup':>6} "
               f"{'failed':>6}  suppressed")
    for r in report.rules:
        suppressed = ", ".join(f"{k}={v}" for k, v in sorted(r.suppressed.items())) or "-"
        click.echo(f"{r.rule:32} {r.candidates:>10} {r.matched:>8} {r.queued:>7} "
                   f"{r.scheduled:>6} {r.duplicates:>6} {r.failed:>6}  {suppressed}")
        if r.error:
            click.echo(f"  error: {r.error}")
        if r.delivery:
            states = dict(r.delivery)
            later = states.pop("suppressed", {})
            line = ", ".join(f"{k}={v}" for k, v in sorted(states.items()))
            if later:
                line += "; suppressed later: " + ", ".join(f"{k}={v}" for k, v in sorted(later.items()))
            click.echo(f"  now: {line}")


def _finish(report: RunReport, as_json: bool) -> None:
    """Print a run's report; exit 1 unless it completed (or is still running on the workers)."""
    click.echo(_json(report.as_dict())) if as_json else _print_run(report)
    if not report.finished:
        return
    if report.status is not RunStatus.COMPLETED:
        sys.exit(1)


_NO_WAIT = click.option("--no-wait", is_flag=True,
                        help="Return once the run is handed to the workers (with a Celery broker).")


@main.command()
@click.option("--rule", "rule_ids", multiple=True, help="Rule id (repeatable).")
@click.option("--all", "all_rules", is_flag=True, help="Every enabled scheduled rule (the default).")
@click.option("--date", "date_", help="Run date YYYY-MM-DD (default today in the configured time zone).")
@click.option("--dry-run", is_flag=True, help="Count and render, write nothing.")
@click.option("--json", "as_json", is_flag=True)
@_NO_WAIT
@click.pass_context
@_guard
def run(ctx: click.Context, rule_ids: tuple[str, ...], all_rules: bool, date_: str | None,
        dry_run: bool, as_json: bool, no_wait: bool) -> None:
    """Run scheduled rules for a date (on the Celery workers when a broker is configured)."""
    from .pipeline import ScheduledRunRequest, start_run

    if all_rules and rule_ids:
        raise click.UsageError("give --rule or --all, not both")
    services = _services(ctx)
    request = ScheduledRunRequest(_today(services.settings, date_), tuple(rule_ids), dry_run=dry_run)
    _finish(start_run(services, request, now=_now(), wait=not no_wait), as_json)


@main.command()
@click.argument("event_type")
@click.option("--data", required=True, help="The payload: JSON text or @file.json.")
@click.option("--dry-run", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
@_NO_WAIT
@click.pass_context
@_guard
def event(ctx: click.Context, event_type: str, data: str, dry_run: bool, as_json: bool, no_wait: bool) -> None:
    """Fire an event (rate_change, product_launch, large_transaction)."""
    from .events import parse_event, parse_event_type
    from .pipeline import EventRunRequest, start_run

    payload = parse_event(parse_event_type(event_type), _read_json(data))
    services = _services(ctx)
    _finish(start_run(services, EventRunRequest(payload, dry_run=dry_run), now=_now(), wait=not no_wait), as_json)


@main.command()
@click.argument("run_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@_NO_WAIT
@click.pass_context
@_guard
def resume(ctx: click.Context, run_id: int, as_json: bool, no_wait: bool) -> None:
    """Finish a run left `running` by a lost process: execute its unfinished shards again."""
    from .pipeline import resume_run

    _finish(resume_run(_services(ctx), run_id, now=_now(), wait=not no_wait), as_json)


@main.command()
@click.argument("rule_id")
@click.option("--customer", "customer_id", help="Explain the rule for this customer.")
@click.option("--date", "date_")
@click.option("--event", "event_data", help="Event payload (JSON or @file) for event rules.")
@click.option("--sample", type=click.IntRange(min=0), help="Matches to show (without --customer).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def preview(ctx: click.Context, rule_id: str, customer_id: str | None, date_: str | None,
            event_data: str | None, sample: int | None, as_json: bool) -> None:
    """What a rule would do, without writing anything."""
    from .pipeline import preview as preview_rule

    services = _services(ctx)
    result = preview_rule(services, rule_id, today=_today(services.settings, date_), now=_now(),
                          customer_id=customer_id, sample=sample,
                          event_payload=_read_json(event_data) if event_data else None)
    if as_json:
        click.echo(_json(result))
        return
    if customer_id is None:
        c = result["counts"]
        click.echo(f"{rule_id} on {result['date']}: {c['candidates']} candidates, {c['matched']} matched, "
                   f"{c['queued']} would be queued, {c['duplicates']} already sent, suppressed {c['suppressed']}")
        for item in result["sample"]:
            _print_match(item)
        return
    for subject in result["subjects"]:
        click.echo(f"{subject['subject_id']}: {'MATCHES' if subject['matches'] else 'does not match'}")
        for line in subject["explanation"]:
            click.echo(f"  {line}")
        if subject["matches"]:
            _print_match(subject)


def _print_match(item: dict[str, Any]) -> None:
    if "suppressed" in item:
        click.echo(f"  -> {item['customer_id']}: suppressed ({item['suppressed']})")
    elif item.get("error"):
        click.echo(f"  -> {item['customer_id']} by {item['channel']}: FAILED {item['error']}")
    elif "channel" in item:
        segments = f" [{item['sms_segments']} SMS part(s)]" if item.get("sms_segments") else ""
        subject = f"{item['subject']} | " if item.get("subject") else ""
        click.echo(f"  -> {item['customer_id']} by {item['channel']}{segments}: {subject}{item['body']}")


@main.command()
@click.option("--rule", "rule_id")
@click.option("--customer", "customer_id")
@click.option("--status")
@click.option("--run", "run_id", type=int)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def messages(ctx: click.Context, rule_id: str | None, customer_id: str | None, status: str | None,
             run_id: int | None, limit: int, as_json: bool) -> None:
    """Messages in the outbox and history, newest first."""
    from .store.outbox import query_messages

    with _db(ctx).connect() as conn:
        rows = query_messages(conn, rule_id=rule_id, customer_id=customer_id, status=status,
                              run_id=run_id, limit=limit)
    if as_json:
        keep = ("id", "rule_id", "customer_id", "subject_id", "channel", "status", "subject", "body",
                "sms_segments", "error", "run_id", "created_at")
        click.echo(_json([{("rule" if k == "rule_id" else k): r[k] for k in keep} for r in rows]))
        return
    for r in rows:
        body = (r["body"] or r["error"] or "").replace("\n", " ")
        click.echo(f"#{r['id']} {r['status']:9} {r['rule_id']} {r['customer_id']} {r['channel']}: {body[:90]}")


@main.command()
@click.argument("run_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def report(ctx: click.Context, run_id: int, as_json: bool) -> None:
    """A run's per-rule counts and suppression reasons."""
    from .pipeline import get_report

    result = get_report(_services(ctx), run_id)
    click.echo(_json(result.as_dict())) if as_json else _print_run(result)


@main.group()
def apikey() -> None:
    """API keys (stored hashed; a key is shown once)."""


@apikey.command("create")
@click.option("--role", required=True, type=click.Choice([role.value for role in Role]))
@click.option("--name", required=True, help="Who or what uses the key, e.g. core-banking.")
@click.pass_context
@_guard
def apikey_create(ctx: click.Context, role: str, name: str) -> None:
    """Create a key and print it once."""
    from .store import apikeys, audit

    with _db(ctx).begin() as conn:
        key_id, key = apikeys.create_key(conn, name=name, role=role, now=_now())
        audit.record(conn, actor="cli", action="apikey.create", target=f"key:{name}#{key_id}", now=_now(),
                     details={"role": role})
    click.echo(key)
    click.echo(f"key #{key_id} for {name} ({role}); store it now: it cannot be shown again", err=True)


@apikey.command("list")
@click.pass_context
@_guard
def apikey_list(ctx: click.Context) -> None:
    """Keys with their role and last use (never the key itself)."""
    from .store import apikeys

    with _db(ctx).connect() as conn:
        for k in apikeys.list_keys(conn):
            state = f"revoked {k['revoked_at']:%Y-%m-%d}" if k["revoked_at"] else "live"
            used = f"last used {k['last_used_at']:%Y-%m-%d %H:%M}" if k["last_used_at"] else "never used"
            click.echo(f"#{k['id']} {k['prefix']}… {k['name']} {k['role']} {state}, {used}")


@apikey.command("revoke")
@click.argument("key_id", type=int)
@click.pass_context
@_guard
def apikey_revoke(ctx: click.Context, key_id: int) -> None:
    """Revoke a key at once."""
    from .store import apikeys, audit

    with _db(ctx).begin() as conn:
        if not apikeys.revoke_key(conn, key_id, _now()):
            raise NotFound("live API key", key_id)
        audit.record(conn, actor="cli", action="apikey.revoke", target=f"key:#{key_id}", now=_now())
    click.echo(f"key #{key_id} revoked")


@main.command()
@click.option("--bind", default="127.0.0.1:8000", show_default=True, help="gunicorn bind address.")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option("--no-scheduler", is_flag=True, help="API only (run `campaign-engine scheduler` elsewhere).")
@click.pass_context
@_guard
def serve(ctx: click.Context, bind: str, workers: int, no_scheduler: bool) -> None:
    """The API under gunicorn, and the scheduler in this process."""
    import subprocess

    _services(ctx)  # fail here, clearly, if settings, rules or the schema are wrong
    command = [sys.executable, "-m", "gunicorn", "--bind", bind, "--workers", str(workers),
               "--access-logfile", "-", "campaign_engine.api:create_app()"]
    server = subprocess.Popen(command)
    try:
        if no_scheduler:
            server.wait()
        else:
            _run_scheduler(ctx)
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)


def _run_scheduler(ctx: click.Context) -> None:
    from .runtime import Runtime
    from .scheduler import default_owner, run_scheduler_forever

    runtime = Runtime(_services(ctx))
    click.echo(f"scheduler {default_owner()} running; SIGHUP reloads rules, SIGTERM stops", err=True)
    run_scheduler_forever(runtime, owner=default_owner())


@main.command()
@click.pass_context
@_guard
def scheduler(ctx: click.Context) -> None:
    """Run the scheduler alone: each enabled scheduled rule on its cron."""
    _run_scheduler(ctx)


@main.command()
@click.option("--concurrency", type=click.IntRange(1, 256), help="Worker processes (default: one per core).")
@click.option("--loglevel", default="INFO", show_default=True)
@click.pass_context
@_guard
def worker(ctx: click.Context, concurrency: int | None, loglevel: str) -> None:
    """A Celery worker: executes run shards and delivery tasks from the broker (celery_broker_url)."""
    from .distributed.app import configure, require_broker

    settings = _settings(ctx)
    require_broker(settings)
    _services(ctx).close()  # fail here, clearly, if settings, rules or the schema are wrong
    argv = ["worker", f"--loglevel={loglevel}", "--queues", settings.celery_queue, "--without-gossip",
            "--without-mingle", "--pool", "prefork"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    configure(settings).worker_main(argv)


@main.command()
@click.option("--once", is_flag=True, help="Send what is due now, then exit (default: keep running).")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=200, show_default=True)
@click.pass_context
@_guard
def send(ctx: click.Context, once: bool, batch_size: int) -> None:
    """The delivery worker: claim due messages, re-check the contact policy, send, record outcomes."""
    import signal
    import threading

    from .delivery.factory import build_delivery_worker

    delivery = build_delivery_worker(_settings(ctx), _db(ctx), batch_size=batch_size, clock=_now)
    worker = delivery.worker
    try:
        shared_at = delivery.shared_rates_at()
        if shared_at:
            click.echo(f"send rates shared through Redis at {shared_at}", err=True)
        if once:
            totals = worker.run_until_idle()
        else:
            stop = threading.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
            click.echo(f"delivery worker {worker.worker_id} running; SIGTERM stops it", err=True)
            totals = worker.run_forever(stop)
    finally:
        delivery.close()
    click.echo(", ".join(f"{k} {v}" for k, v in totals.items() if v) or "nothing due")


@main.group()
def suppress() -> None:
    """The suppression list: numbers and addresses never to contact."""


@suppress.command("add")
@click.argument("channel", type=click.Choice(["sms", "email"]))
@click.argument("address")
@click.option("--reason", required=True, help="e.g. complaint, wrong number, bounced.")
@click.pass_context
@_guard
def suppress_add(ctx: click.Context, channel: str, address: str, reason: str) -> None:
    """Never contact this number or address again (checked when queuing and before sending)."""
    from .store import audit, suppression

    with _db(ctx).begin() as conn:
        suppression.add(conn, channel=channel, address=address, reason=reason, source="cli", now=_now())
        audit.record(conn, actor="cli", action="suppression.add", target=channel, now=_now(),
                     details={"reason": reason})
    click.echo(f"{channel} {suppression.normalize(channel, address)} suppressed")


@suppress.command("remove")
@click.argument("channel", type=click.Choice(["sms", "email"]))
@click.argument("address")
@click.pass_context
@_guard
def suppress_remove(ctx: click.Context, channel: str, address: str) -> None:
    """Take a number or address off the list."""
    from .store import audit, suppression

    with _db(ctx).begin() as conn:
        if not suppression.remove(conn, channel=channel, address=address):
            raise NotFound("suppressed address", address)
        audit.record(conn, actor="cli", action="suppression.remove", target=channel, now=_now())
    click.echo("removed")


@suppress.command("list")
@click.pass_context
@_guard
def suppress_list(ctx: click.Context) -> None:
    """The list, oldest first."""
    from .store import suppression

    with _db(ctx).connect() as conn:
        for row in suppression.list_all(conn):
            click.echo(f"{row['channel']:5} {row['address']:30} {row['reason']} ({row['source']}, "
                       f"{row['created_at']:%Y-%m-%d})")


if __name__ == "__main__":
    main()
