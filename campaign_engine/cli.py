"""`campaign-engine` command line: thin commands over pipeline and store."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click

from .clock import utc_now
from .errors import CampaignEngineError, NotFound, Problem, StaleDraft, ValidationFailed
from .settings import Settings, load_settings
from .store.db import DatabaseError
from .vocabulary import CUSTOMER_RISK_LEVELS, MessageStatus, Role, RunKind, RunStatus

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
    obj = ctx.ensure_object(dict)
    if "settings" not in obj:
        obj["settings"] = load_settings()
        if obj.get("log_format") is None and obj["settings"].log_format != "text":  # the setting, unless told
            from . import logs

            logs.configure(obj["settings"].log_format, obj.get("log_level", logging.WARNING))
    return obj["settings"]


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
        except (ValidationFailed, NotFound, StaleDraft) as exc:
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


_QUIET = click.option("--quiet", is_flag=True, help="No progress bar or progress lines on stderr.")


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log progress (INFO) to stderr.")
@click.option("--log-format", type=click.Choice(["text", "json"]),
              help="Log lines as text or one JSON object per line with run/rule/message ids "
                   "(default: the log_format setting).")
@click.pass_context
def main(ctx: click.Context, verbose: bool, log_format: str | None) -> None:
    """Rules-engine-driven marketing campaigns for a retail bank."""
    from . import logs

    obj = ctx.ensure_object(dict)
    obj["log_level"] = logging.INFO if verbose else logging.WARNING
    obj["log_format"] = log_format
    logs.configure(log_format or "text", obj["log_level"])


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
@_QUIET
@click.pass_context
@_guard
def demo_data(ctx: click.Context, customers: int, seed: int, date_: str | None, quiet: bool) -> None:
    """Load realistic demo customers, products, deposits and holdings."""
    from .demo.loader import load_demo_data
    from .demo.users import create_demo_users
    from .progress import Progress

    settings = _settings(ctx)
    bars: dict[str, Progress] = {}
    last_batch = [time.monotonic()]  # when the last batch was written: a new kind's rows began then

    def shown(kind: str, rows: int) -> None:  # a bar per kind; customers' total is known
        if kind not in bars:
            for bar in bars.values():
                bar.close()
            bars[kind] = Progress(f"demo-data {kind}", customers if kind == "customers" else None, quiet=quiet,
                                  started=last_batch[0])
        bars[kind].update(rows)
        last_batch[0] = time.monotonic()

    try:
        counts = load_demo_data(_db(ctx), customers, seed=seed, today=_today(settings, date_), now=_now(),
                                batch_size=max(settings.batch_size, 5000), on_batch=shown)
    finally:
        for bar in bars.values():
            bar.close()
    counts["console demo users"] = create_demo_users(_db(ctx), _now())
    click.echo(", ".join(f"{n} {kind}" for kind, n in counts.items()) + " loaded")


@main.command("import")
@click.argument("kind", type=click.Choice(["customers", "products", "deposits", "holdings", "conversions",
                                           "managers"]))
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_QUIET
@click.pass_context
@_guard
def import_(ctx: click.Context, kind: str, file: Path, quiet: bool) -> None:
    """Upsert rows from a CSV file; bad rows are reported with their line, good rows kept."""
    from .progress import Progress
    from .store.csv_import import import_csv

    total = None if quiet else _data_lines(file)
    engine = _db(ctx)
    with Progress(f"import {kind}", total, quiet=quiet) as bar:
        report = import_csv(engine, kind, file, now=_now(), tz=_settings(ctx).tz,
                            on_batch=lambda r: bar.update(r.rows))
    for problem in report.problems:
        click.echo(f"{problem}", err=True)
    click.echo(report.summary())
    if kind == "managers":  # an inactive manager's open tasks go to their customers' branch queues
        from .store.managers import requeue_open_tasks

        with engine.begin() as conn:
            moved = requeue_open_tasks(conn, None, actor=_cli_actor(None), now=_now(), tz=_settings(ctx).tz,
                                       reason="manager inactive")
        if moved:
            click.echo(f"{len(moved)} open task(s) of inactive managers moved to their branch queues")
    if not report.ok:
        sys.exit(1)


def _data_lines(path: Path) -> int | None:
    """Lines after the header (a progress total: fast, a buffered count of newlines); None if unreadable."""
    try:
        with open(path, "rb") as f:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
            f.seek(-1, 2) if lines else None
            last = f.read(1) if lines else b""
    except OSError:
        return None
    lines += 0 if last == b"\n" or not lines else 1  # a last line without its newline
    return max(lines - 1, 0) or None


@main.group()
def rules() -> None:
    """Rule files."""


@rules.command("validate")
@click.option("--json", "as_json", is_flag=True)
@click.option("--date", "date_", help="Run date whose official calendar to check (default today).")
@click.pass_context
@_guard
def rules_validate(ctx: click.Context, as_json: bool, date_: str | None) -> None:
    """Check every rule file, render every template against a sample context and check the product
    codes and types rules name against the database's products; any problem exits 2 (bad input).
    A run date whose official calendar is not announced yet is a warning naming the rules it stops."""
    from .facts.official import load_holidays
    from .pipeline.validate import calendar_warnings, catalogue_warnings, read_catalogue, validate_rules
    from .rendering.environment import build_environment
    from .rulebook.loader import load_rulebook
    from .store.sql_store import SqlStore

    settings = _settings(ctx)
    rulebook = load_rulebook(settings.rules_dir, settings.templates_dir)
    catalogue = read_catalogue(SqlStore(_db(ctx)))
    problems = validate_rules(rulebook, build_environment(settings.templates_dir), settings, catalogue)
    warnings = catalogue_warnings(rulebook, catalogue) + calendar_warnings(
        rulebook, load_holidays(settings.holidays_file), _today(settings, date_))
    if as_json:
        click.echo(_json({"rules": sorted(rulebook.rules), "problems": [p.as_dict() for p in problems],
                          "warnings": [w.as_dict() for w in warnings]}))
    else:
        for problem in problems:
            click.echo(str(problem), err=True)
        for warning in warnings:
            click.echo(f"warning: {warning}", err=True)
        click.echo(f"{len(rulebook.rules)} rule(s) loaded, {len(problems)} problem(s)"
                   + (f", {len(warnings)} warning(s)" if warnings else ""))
    if problems:
        sys.exit(2)


def _cli_actor(name: str | None) -> str:
    """Who a command acts as: `cli:<NAME>` (--as), else `cli:<the OS user>`."""
    import getpass

    return f"cli:{name or getpass.getuser()}"


API_KEY_ENV = "CAMPAIGN_ENGINE_API_KEY"


def _api_key_secret(name: str | None) -> str:
    """The API key of whoever runs the command: $CAMPAIGN_ENGINE_API_KEY, else typed (hidden) when
    stdin is a terminal, else the first line piped in."""
    secret = os.environ.get(API_KEY_ENV, "").strip()
    if secret:
        return secret
    stdin = sys.stdin
    if stdin is not None and stdin.isatty():
        secret = str(click.prompt(f"API key{f' of {name}' if name else ''}", hide_input=True, default="",
                                  show_default=False, err=True)).strip()
    else:
        secret = (stdin.readline() if stdin is not None else "").strip()
    if not secret:
        raise click.UsageError(f"this step needs your API key: set {API_KEY_ENV}, type it when asked, or pipe "
                               f"it in (`campaign-engine apikey create --name NAME --role ROLE` makes one)")
    return secret


def _key_actor(ctx: click.Context, name: str | None, permission: str, *, doing: str) -> str:
    """The person behind a step that needs a role, proven by their API key's secret (`_api_key_secret`),
    verified as the API verifies it (store.apikeys.find_key: live, not revoked); `--as NAME`, when
    given, must be that key's name, and the key's role must grant `permission`. The identity is the
    API's: `key:<name>#<id>`."""
    from .api.auth import PERMISSIONS
    from .store import apikeys

    secret = _api_key_secret(name)
    with _db(ctx).begin() as conn:
        key = apikeys.find_key(conn, secret)
        if key is not None:
            apikeys.touch_key(conn, int(key["id"]), _now())
    if key is None:
        raise click.UsageError("unknown or revoked API key (from $" + API_KEY_ENV + " or stdin)")
    if name is not None and key["name"] != name:
        raise click.UsageError(f"--as {name}: the API key given is {key['name']!r}'s (key {key['id']}), "
                               f"not {name!r}'s")
    if permission not in PERMISSIONS.get(key["role"], frozenset()):
        roles = ", ".join(sorted(str(r) for r, granted in PERMISSIONS.items() if permission in granted))
        raise click.UsageError(f"the API key of {key['name']} (key {key['id']}) has role {key['role']}, which may "
                               f"not {doing}: that needs a key of role {roles}")
    return f"key:{key['name']}#{key['id']}"


def _print_draft(draft: dict[str, Any]) -> None:
    changes = ", ".join(f"{c['rule']} {c['change']}" for c in draft["changes"]) or "-"
    click.echo(f"draft {draft['id']} {draft['file']}: {draft['status']} ({changes}) "
               f"content {draft['content_hash'][:12]} by {draft['author']}")
    for problem in draft["problems"]:
        click.echo(f"  {Problem(**problem)}", err=True)
    if draft["status"] == "pending":
        click.echo(f"  to review: campaign-engine rules diff {draft['id']}; to approve (someone else, with "
                   f"their API key in ${API_KEY_ENV}): campaign-engine rules approve {draft['id']} --as NAME")


@rules.command("publish")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--all", "all_", is_flag=True, help="Every rule file of the rule folder.")
@click.option("--note", required=True, help="What the change does and why (the reviewer reads it).")
@click.option("--as", "as_", help="Your name (default: the OS user); while the database requires approval, "
                                 "your API key's name (a cross-check of the key given).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def rules_publish(ctx: click.Context, files: tuple[Path, ...], all_: bool, note: str, as_: str | None,
                  as_json: bool) -> None:
    """Submit rule files from disk, each with its templates, as drafts: live once approved by
    someone else (or at once with `approval: off`); a file with problems is stored as an invalid
    draft and the live version keeps running. Exits 2 when a draft is invalid.

    While the database requires approval, the author is the one whose API key (of a role that may
    submit rules: marketer, admin) is in $CAMPAIGN_ENGINE_API_KEY, typed when asked or piped in; with
    `approval: off` on a database that never required it, `cli:<--as or the OS user>`."""
    from .api.auth import RULES
    from .pipeline.publishing import ApprovalLocked, publish_folder, requires_approval

    if bool(files) == all_:
        raise click.UsageError("name rule files, or --all")
    services = _services(ctx)
    rules_dir = services.settings.rules_dir
    paths = []
    for file in files:  # as given (rules/birthday.yaml), else in the rule folder (birthday.yaml)
        found = next((p for p in (file, rules_dir / file) if p.is_file()), None)
        if found is None:
            raise click.BadParameter(f"no file {file} here nor in the rule folder {rules_dir}", param_hint="FILES")
        paths.append(found)
    try:
        author = (_key_actor(ctx, as_, RULES, doing="submit rule changes") if requires_approval(services)
                  else _cli_actor(as_))
        drafts = publish_folder(services, paths or None, note=note, author=author, now=_now())
    except ApprovalLocked as exc:  # `approval: off` on a database that requires approval: bad input
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(_json(drafts))
    else:
        for draft in drafts:
            _print_draft(draft)
    if any(d["status"] == "invalid" for d in drafts):
        sys.exit(2)


@rules.command("drafts")
@click.option("--status", type=click.Choice(["pending", "live", "invalid", "rejected", "superseded"]))
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def rules_drafts(ctx: click.Context, status: str | None, limit: int, as_json: bool) -> None:
    """Drafts, newest first (`--status pending`: what awaits review)."""
    from .pipeline.publishing import view_of

    services = _services(ctx)
    drafts = [view_of(row) for row in services.store.drafts(status=status, limit=limit)]
    if as_json:
        click.echo(_json(drafts))
        return
    for draft in drafts:
        _print_draft(draft)
    if not drafts:
        click.echo("no drafts" + (f" {status}" if status else ""))


@rules.command("show")
@click.argument("draft_id", type=int)
@click.pass_context
@_guard
def rules_show(ctx: click.Context, draft_id: int) -> None:
    """A draft: its note, problems and the diff of its texts against the live versions."""
    from .pipeline.publishing import draft_view

    draft = draft_view(_services(ctx), draft_id, texts=True)
    _print_draft(draft)
    click.echo(f"note: {draft['note']}")
    click.echo(draft["diff"] or "(no text change)")


@rules.command("approve")
@click.argument("draft_id", type=int)
@click.option("--as", "as_", help="The approver's API key name (a cross-check: the key given must be it).")
@click.option("--content-hash", help="The content you reviewed (refused if the draft is other content).")
@click.pass_context
@_guard
def rules_approve(ctx: click.Context, draft_id: int, as_: str | None, content_hash: str | None) -> None:
    """Put a pending draft live (not its author: four eyes). The approver is the one whose API key
    (role approver or admin) is in $CAMPAIGN_ENGINE_API_KEY, typed when asked or piped in."""
    from .api.auth import APPROVE
    from .pipeline.publishing import approve

    actor = _key_actor(ctx, as_, APPROVE, doing="approve rule changes")
    _print_draft(approve(_services(ctx), draft_id, actor=actor, now=_now(), content_hash=content_hash))


@rules.command("reject")
@click.argument("draft_id", type=int)
@click.option("--as", "as_", help="The reviewer's API key name (a cross-check: the key given must be it).")
@click.option("--reason", required=True)
@click.pass_context
@_guard
def rules_reject(ctx: click.Context, draft_id: int, as_: str | None, reason: str) -> None:
    """Send a pending draft back to its author with a reason. The reviewer is the one whose API key
    (role approver or admin) is in $CAMPAIGN_ENGINE_API_KEY, typed when asked or piped in."""
    from .api.auth import APPROVE
    from .pipeline.publishing import reject

    actor = _key_actor(ctx, as_, APPROVE, doing="reject rule changes")
    _print_draft(reject(_services(ctx), draft_id, actor=actor, reason=reason, now=_now()))


@rules.command("disable")
@click.argument("rule_id")
@click.option("--reason", required=True)
@click.option("--as", "as_", help="Your name (default: the OS user).")
@click.pass_context
@_guard
def rules_disable(ctx: click.Context, rule_id: str, reason: str, as_: str | None) -> None:
    """The emergency stop: at once, in every process, no second person; unsent messages are suppressed."""
    from .pipeline.publishing import disable

    result = disable(_services(ctx), rule_id, actor=_cli_actor(as_), reason=reason, now=_now())
    click.echo(f"rule {rule_id} disabled; {result['suppressed_messages']} unsent message(s) suppressed")


@rules.command("enable")
@click.argument("rule_id")
@click.option("--note", default="", help="Why it may run again.")
@click.option("--as", "as_", help="Your name (default: the OS user); while the database requires approval, "
                                 "your API key's name (a cross-check of the key given).")
@click.pass_context
@_guard
def rules_enable(ctx: click.Context, rule_id: str, note: str, as_: str | None) -> None:
    """Ask to switch a disabled rule on again: a draft that someone else approves. While the database
    requires approval, the one asking is proven by their API key (marketer or admin), as for
    `rules publish`."""
    from .api.auth import RULES
    from .pipeline.publishing import ApprovalLocked, enable, requires_approval

    services = _services(ctx)
    try:
        actor = (_key_actor(ctx, as_, RULES, doing="ask to enable a rule") if requires_approval(services)
                 else _cli_actor(as_))
        _print_draft(enable(services, rule_id, actor=actor, note=note, now=_now()))
    except ApprovalLocked as exc:  # `approval: off` on a database that requires approval: bad input
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


@rules.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def rules_list(ctx: click.Context, as_json: bool) -> None:
    """The published rules every process runs: version, status, author, when published."""
    services = _services(ctx)
    book = services.rulebook
    published = services.store.live_state()

    def stopped(rule_id: str) -> str | None:  # who stopped it, when (local time) and why
        state = published.get(rule_id)
        if rule_id not in book.stopped or state is None or state["enabled"]:
            return book.stopped.get(rule_id)
        return (f"disabled by {state['changed_by']} at {_local(services.settings, state['changed_at'])}: "
                f"{state['reason']}")

    items = [{"id": r.id, "name": r.name, "version": r.version, "status": "live" if r.enabled else "disabled",
              "content_hash": r.content_hash, "author": published.get(r.id, {}).get("author"),
              "approver": published.get(r.id, {}).get("approver"),
              "published_at": published.get(r.id, {}).get("published_at"), "disabled": stopped(r.id)}
             for r in sorted(book.rules.values(), key=lambda r: r.id)]
    pending = len(services.store.drafts(status="pending", limit=500))
    if as_json:
        click.echo(_json({"generation": book.generation, "items": items, "pending_drafts": pending,
                          "problems": [p.as_dict() for p in book.problems]}))
        return
    for item in items:
        click.echo(f"{_pad(item['id'], 28)} v{item['version']:<3} {_pad(item['status'], 8)} "
                   f"{_local(services.settings, item['published_at'])}  {item['author']}"
                   + (f" / {item['approver']}" if item["approver"] else "")
                   + (f"  [{item['disabled']}]" if item["disabled"] else ""))
    for problem in book.problems:
        click.echo(f"not live: {problem}", err=True)
    awaiting = (f"{pending}{'+' if pending >= 500 else ''} draft(s) await approval: "
                "`campaign-engine rules drafts --status pending`, then someone other than the author "
                "`campaign-engine rules approve DRAFT --as NAME`") if pending else None
    if not items:
        click.echo(f"no published rules yet; {awaiting}" if awaiting
                   else "no published rules: `campaign-engine rules publish --all --note ...`")
    elif awaiting:
        click.echo(awaiting)


@rules.command("history")
@click.argument("rule_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def rules_history(ctx: click.Context, rule_id: str, as_json: bool) -> None:
    """Every published version of a rule, newest first, with its diff against the one before."""
    from .pipeline.publishing import history

    services = _services(ctx)
    versions = history(services, rule_id)
    if as_json:
        click.echo(_json(versions))
        return
    for v in versions:
        click.echo(f"v{v['version']} {_local(services.settings, v['published_at'])} by {v['author']}"
                   + (f", approved by {v['approver']}" if v["approver"] else ", approval off")
                   + (" (live)" if v["live"] else "") + f": {v['note']}")
        click.echo(v["diff"].rstrip() or "(no text change)")


@rules.command("diff")
@click.argument("draft_id", type=int)
@click.option("--date", "date_", help="Run date to compare on (default today).")
@click.option("--event", "event_", help="Event payload (JSON or @file) for event rules.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def rules_diff(ctx: click.Context, draft_id: int, date_: str | None, event_: str | None, as_json: bool) -> None:
    """What approving a draft would change: a dry run of the live and the draft version of each rule
    it changes: customers added and removed, by reason, with samples and the conditions that changed."""
    from .pipeline.publishing import draft_audience

    services = _services(ctx)
    result = draft_audience(services, draft_id, today=_today(services.settings, date_), now=_now(),
                            event_payload=_read_json(event_) if event_ else None, sample=10)
    if as_json:
        click.echo(_json(result))
        return
    for diff in result["rules"]:
        click.echo(f"{diff['rule']} on {diff['date']}: +{diff['added']} added, -{diff['removed']} removed")
        if diff.get("note"):
            click.echo(f"  note: {diff['note']}")
        for side in ("live", "draft"):
            if (diff.get(side) or {}).get("skipped"):
                click.echo(f"  {side}: contacts nobody on this date ({diff[side]['skipped']})")
        for reason, counts in sorted(diff["by_reason"].items()):
            click.echo(f"  {_pad(reason, 24)} live {counts['live']:>8}  draft {counts['draft']:>8}  "
                       f"{counts['delta']:+d}")
        if diff["sample_added"]:
            click.echo("  added, e.g.: " + ", ".join(diff["sample_added"]))
        if diff["sample_removed"]:
            click.echo("  removed, e.g.: " + ", ".join(diff["sample_removed"]))
        for subject, changed in diff["explain"].items():
            click.echo(f"  {subject}: " + "; ".join(
                f"{c.get('condition', 'policy')} live {c.get('live')} -> draft {c.get('draft')}"
                if "condition" in c else f"policy {c['policy']['live']} -> {c['policy']['draft']}" for c in changed))


@rules.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
@_guard
def rules_export(ctx: click.Context, directory: Path) -> None:
    """Write the live set back as files: DIRECTORY/rules/*.yaml and DIRECTORY/templates/."""
    from .pipeline.publishing import export_live

    written, problems = export_live(_services(ctx), directory / "rules", directory / "templates")
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)
    click.echo(f"{len(written)} file(s) written under {directory}")


LEGEND = ("candidates: read by the rule's SQL; matched: passed its conditions; queued: written, due now; "
          "sched: written, due when the sending window opens; dup: already written for this occurrence "
          "by an earlier run (nothing new); failed: could not be rendered (`retry` once fixed)")


def _width(text: str) -> int:
    """Columns a terminal gives text (Chinese characters take two)."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str | None, columns: int) -> str:
    text = text or "-"
    return text + " " * max(0, columns - _width(text))


def _local(settings: Settings, value: dt.datetime | None) -> str:
    """A moment in the configured time zone, with its offset: 2026-03-10 09:30+08:00."""
    return value.astimezone(settings.tz).isoformat(sep=" ", timespec="minutes") if value else "-"


def _print_run(report: RunReport, services: Any) -> None:
    """A run report for a person: header, per-rule table with the rules' names, a legend, where
    the run's SMS wait for their window, and how to follow a run still running."""
    settings = services.settings
    head = f"run {report.run_id or '(dry run)'} {report.date.isoformat()} {report.status.value}"
    if report.replayed:
        head += " (event already handled: this is its first run)"
    shards = report.shards
    if shards and (shards.total > 1 or not report.finished):
        head += f" ({shards.completed}/{shards.total} shards completed"
        head += f", {shards.failed} failed)" if shards.failed else ")"
    click.echo(head)
    if report.started_at:
        click.echo(f"started {_local(settings, report.started_at)}"
                   + (f", finished {_local(settings, report.finished_at)}" if report.finished_at else ""))
    if report.error:
        click.echo(f"error: {report.error}")
    if not report.finished:
        click.echo(f"run {report.run_id} is running: `campaign-engine report {report.run_id}` shows where it stands")
        return
    if not report.rule_ids and not services.rulebook.rules:
        click.echo("no rule is live: publish the rule files (`campaign-engine rules publish --all --note ...`); "
                   "`rules list` shows what is live, `rules drafts` what awaits approval", err=True)
    names = {rule_id: rule.name for rule_id, rule in services.rulebook.rules.items()}
    labels = {r.rule: f"{r.rule} {names.get(r.rule, '')}".rstrip() for r in report.rules}
    column = max([_width(label) for label in labels.values()] + [32])
    click.echo(f"{'rule':{column}} {'candidates':>10} {'matched':>8} {'queued':>7} {'sched':>6} {'dup':>6} "
               f"{'failed':>6}  suppressed")
    for r in report.rules:
        suppressed = ", ".join(f"{k}={v}" for k, v in sorted(r.suppressed.items())) or "-"
        label = labels[r.rule] + " " * (column - _width(labels[r.rule]))
        click.echo(f"{label} {r.candidates:>10} {r.matched:>8} {r.queued:>7} "
                   f"{r.scheduled:>6} {r.duplicates:>6} {r.failed:>6}  {suppressed}")
        if r.plans_tasks:
            click.echo(f"  manager tasks: {r.tasks} planned, {r.merged} merged into open ones "
                       "(`tasks list --rule " + r.rule + "`)")
        if r.held_out:
            click.echo(f"  held out: {r.held_out} (holdout or control group: recorded as held_out, never sent)")
        if r.error:
            click.echo(f"  error: {r.error}")
        if r.skipped:
            click.echo(f"  skipped: {r.skipped}")
        if r.delivery:
            states = dict(r.delivery)
            later = states.pop("suppressed", {})
            line = ", ".join(f"{k}={v}" for k, v in sorted(states.items()))
            if later:
                line += "; suppressed later: " + ", ".join(f"{k}={v}" for k, v in sorted(later.items()))
            click.echo(f"  now: {line}")
    import textwrap

    click.echo(textwrap.fill(LEGEND, width=110, subsequent_indent="  "))
    waiting = sum(r.scheduled for r in report.rules)
    if waiting:
        click.echo(f"{waiting} message(s) wait for their sending window ({_windows(settings)}); "
                   "`campaign-engine send` delivers them once it opens")


def _windows(settings: Settings) -> str:
    from .policy.quiet_hours import next_send_time

    parts = []
    for channel, window in sorted(settings.quiet_hours.items()):
        opens = next_send_time(_now(), window, settings.tz)
        parts.append(f"{channel} {window.start:%H:%M}-{window.end:%H:%M}, next opens {_local(settings, opens)}")
    return "; ".join(parts) or "no sending hours set"


def _finish(report: RunReport, as_json: bool, services: Any) -> None:
    """Print a run's report; exit 1 unless it completed (or is still running on the workers)."""
    click.echo(_json(report.as_dict())) if as_json else _print_run(report, services)
    if not report.finished:
        return
    if report.status is not RunStatus.COMPLETED:
        sys.exit(1)


_NO_WAIT = click.option("--no-wait", is_flag=True,
                        help="Return once the run is handed to the workers (with a Celery broker).")


class _ShardWatcher:
    """A run's shards as a progress bar (or lines) while this command waits for it: read from the
    database every half second, so shards on Celery workers on other machines count the same."""

    def __init__(self, services: Any, label: str, *, quiet: bool) -> None:
        self.services, self.label, self.quiet = services, label, quiet
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, run_id: int) -> None:
        if self.quiet or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._watch, args=(run_id,), name="progress", daemon=True)
        self._thread.start()

    def _watch(self, run_id: int) -> None:
        from .pipeline import get_report
        from .progress import Progress

        with Progress(f"{self.label} {run_id}", unit="shard(s)") as bar:
            stopping = False
            while True:
                try:
                    report = get_report(self.services, run_id)
                except Exception:  # noqa: BLE001 (progress is a courtesy: the run's own errors are reported)
                    report = None
                if report is not None and report.shards is not None:
                    if report.shards.total and bar.total != report.shards.total:
                        bar.set_total(report.shards.total)
                    bar.update(report.shards.completed + report.shards.failed)
                if stopping or (report is not None and report.finished):
                    return
                stopping = self._stop.wait(0.5)  # asked to stop: one last look, then the bar closes

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


@main.command()
@click.option("--rule", "rule_ids", multiple=True, help="Rule id (repeatable).")
@click.option("--all", "all_rules", is_flag=True, help="Every enabled scheduled rule (the default).")
@click.option("--date", "date_", help="Run date YYYY-MM-DD (default today in the configured time zone).")
@click.option("--dry-run", is_flag=True, help="Count and render, write nothing.")
@click.option("--json", "as_json", is_flag=True)
@_NO_WAIT
@_QUIET
@click.pass_context
@_guard
def run(ctx: click.Context, rule_ids: tuple[str, ...], all_rules: bool, date_: str | None,
        dry_run: bool, as_json: bool, no_wait: bool, quiet: bool) -> None:
    """Run scheduled rules for a date (on the Celery workers when a broker is configured)."""
    from .pipeline import ScheduledRunRequest, start_run

    if all_rules and rule_ids:
        raise click.UsageError("give --rule or --all, not both")
    services = _services(ctx)
    request = ScheduledRunRequest(_today(services.settings, date_), tuple(rule_ids), dry_run=dry_run)
    watcher = _ShardWatcher(services, "run", quiet=quiet or no_wait)
    try:
        report = start_run(services, request, now=_now(), wait=not no_wait, on_recorded=watcher.start)
    finally:
        watcher.stop()
    _finish(report, as_json, services)


@main.command()
@click.argument("event_type")
@click.option("--data", required=True, help="The payload: JSON text or @file.json.")
@click.option("--dry-run", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
@_NO_WAIT
@_QUIET
@click.pass_context
@_guard
def event(ctx: click.Context, event_type: str, data: str, dry_run: bool, as_json: bool, no_wait: bool,
          quiet: bool) -> None:
    """Fire an event (rate_change, product_launch, large_transaction)."""
    from .events import parse_event, parse_event_type
    from .pipeline import EventRunRequest, start_run

    payload = parse_event(parse_event_type(event_type), _read_json(data))
    services = _services(ctx)
    watcher = _ShardWatcher(services, "event run", quiet=quiet or no_wait)
    try:
        report = start_run(services, EventRunRequest(payload, dry_run=dry_run), now=_now(), wait=not no_wait,
                           on_recorded=watcher.start)
    finally:
        watcher.stop()
    _finish(report, as_json, services)


@main.command()
@click.argument("run_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@_NO_WAIT
@_QUIET
@click.pass_context
@_guard
def resume(ctx: click.Context, run_id: int, as_json: bool, no_wait: bool, quiet: bool) -> None:
    """Finish a run left `running` by a lost process: execute its unfinished shards again."""
    from .pipeline import resume_run

    services = _services(ctx)
    watcher = _ShardWatcher(services, "resumed run", quiet=quiet or no_wait)
    watcher.start(run_id)
    try:
        report = resume_run(services, run_id, now=_now(), wait=not no_wait)
    finally:
        watcher.stop()
    _finish(report, as_json, services)


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
        waiting: dict[str, int] = {}  # local time the sending window opens -> messages (channels merged)
        for entry in result["scheduled_for"]:
            at = _local_time(entry["at"])
            waiting[at] = waiting.get(at, 0) + entry["count"]
        scheduled = f"{c['scheduled']} scheduled"
        if len(waiting) == 1:
            scheduled += f" for {next(iter(waiting))}"
        elif waiting:
            scheduled += f" ({', '.join(f'{n} for {at}' for at, n in waiting.items())})"
        failed = f", {c['failed']} would fail to render" if c["failed"] else ""
        tasks = f"{_planned_tasks(result['tasks_planned'], c.get('merged', 0))}, " if "tasks_planned" in result else ""
        click.echo(f"{rule_id} on {result['date']}: {c['candidates']} candidates, {c['matched']} matched, "
                   f"{c['queued']} would be queued now, {scheduled}, {tasks}{c['duplicates']} already written"
                   f"{failed}, suppressed {c['suppressed']}")
        for item in result["sample"]:
            _print_match(item)
        return
    for subject in result["subjects"]:
        click.echo(f"{subject['subject_id']}: {'MATCHES' if subject['matches'] else 'does not match'}")
        for line in subject["explanation"]:
            click.echo(f"  {line}")
        if subject["matches"] or "existing_message" in subject:
            _print_match(subject)


def _planned_tasks(planned: list[dict[str, Any]], merged: int) -> str:
    """A preview's manager tasks: '2 calls would be planned for 2026-03-16 10:00 +08:00, 1 merged
    into an open task' (several due times: '(1 for .., 1 for ..)')."""
    by_type: dict[str, int] = {}
    by_time: dict[str, int] = {}
    for entry in planned:
        by_type[entry["type"]] = by_type.get(entry["type"], 0) + entry["count"]
        at = _local_time(entry["at"])
        by_time[at] = by_time.get(at, 0) + entry["count"]
    kinds = ", ".join(f"{n} {kind}{'' if n == 1 else 's'}" for kind, n in sorted(by_type.items())) or "0 calls or visits"
    text = f"{kinds} would be planned"
    if len(by_time) == 1:
        text += f" for {next(iter(by_time))}"
    elif by_time:
        text += f" ({', '.join(f'{n} for {at}' for at, n in by_time.items())})"
    return text + f", {merged} merged into open tasks"


def _print_match(item: dict[str, Any]) -> None:
    if "merged_into" in item:
        click.echo(f"  -> {item['customer_id']} by {item['channel']}: joins open task #{item['merged_into']}"
                   + (f" (due {_local_time(item['due_at'])})" if item.get("due_at") else ""))
        return
    if "owner" in item and "body" in item:
        owner = item["owner"]
        whose = (f"{owner['id']} {owner['name'] or ''}".rstrip() if owner["id"]
                 else f"the {owner['branch'] or '-'} branch queue")
        click.echo(f"  -> {item['customer_id']} by {item['channel']}, due {_local_time(item['due_at'])} for "
                   f"{whose}: {item['body']}")
        return
    if "existing_message" in item:
        m = item["existing_message"]
        due = f", due {_local_time(m['due_at'])}" if m["status"] == "scheduled" and m["due_at"] else ""
        click.echo(f"  -> {item['customer_id']}: already written: message #{m['id']}, {m['status']} by "
                   f"{m['channel']}{due} (run {m['run_id']})")
    elif "suppressed" in item:
        click.echo(f"  -> {item['customer_id']}: suppressed ({item['suppressed']})")
    elif "held_out" in item:
        group = "the global control group" if item["held_out"] == "control_group" else "the rule's holdout"
        click.echo(f"  -> {item['customer_id']}: held out ({group}): recorded for the effect report, never sent")
    elif item.get("error"):
        click.echo(f"  -> {item['customer_id']} by {item['channel']}: FAILED {item['error']}")
    elif "channel" in item:
        segments = f" [{item['sms_segments']} SMS part(s)]" if item.get("sms_segments") else ""
        subject = f"{item['subject']} | " if item.get("subject") else ""
        when = f", scheduled for {_local_time(item['scheduled_for'])}" if item.get("scheduled_for") else ""
        click.echo(f"  -> {item['customer_id']} by {item['channel']}{segments}{when}: {subject}{item['body']}")


def _local_time(iso: str) -> str:
    """'2026-03-11T08:00:00+08:00' -> '2026-03-11 08:00 +08:00' (a preview's times are local already)."""
    text = dt.datetime.fromisoformat(iso).isoformat(sep=" ", timespec="minutes")
    return f"{text[:16]} {text[16:]}"


MESSAGE_LINE = 90  # terminal columns of a body on a message's one line (without --full)


def _cut(text: str, columns: int) -> str:
    """`text` in at most `columns` terminal columns, ending in … when it had to be cut."""
    if _width(text) <= columns:
        return text
    kept, used = [], 1  # the ellipsis takes one column
    for ch in text:
        used += _width(ch)
        if used > columns:
            break
        kept.append(ch)
    return "".join(kept) + "…"


@main.command()
@click.option("--rule", "rule_id")
@click.option("--customer", "customer_id")
@click.option("--status", type=click.Choice([s.value for s in MessageStatus]))
@click.option("--run", "run_id", type=int)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--full", is_flag=True, help="Whole subjects and bodies (default: one line per message).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def messages(ctx: click.Context, rule_id: str | None, customer_id: str | None, status: str | None,
             run_id: int | None, limit: int, full: bool, as_json: bool) -> None:
    """Messages in the outbox and history, newest first; recipients as `cli_contact_data` says."""
    from .masking import shown
    from .store.outbox import query_messages

    settings = _settings(ctx)
    with _db(ctx).connect() as conn:
        rows = query_messages(conn, rule_id=rule_id, customer_id=customer_id, status=status,
                              run_id=run_id, limit=limit)
    rows = [shown(r, ("recipient",), settings.cli_contact_data) for r in rows]
    if as_json:
        keep = ("id", "rule_id", "customer_id", "subject_id", "channel", "recipient", "status", "subject", "body",
                "sms_segments", "error", "run_id", "created_at", "due_at", "history")
        click.echo(_json([{("rule" if k == "rule_id" else k): r[k] for k in keep} for r in rows]))
        return
    for r in rows:
        head = (f"#{r['id']} {r['status']:9} {r['rule_id']} {r['customer_id']} {r['channel']} "
                f"{r['recipient'] or '-'} due {_local(settings, r['due_at'])}")
        if full:
            click.echo(head)
            for text in (f"subject: {r['subject']}" if r["subject"] else None, r["body"],
                         f"error: {r['error']}" if r["error"] else None):
                for line in (text or "").splitlines():
                    click.echo(f"  {line}")
            continue
        click.echo(f"{head}: {_cut(' '.join((r['body'] or r['error'] or '').split()), MESSAGE_LINE)}")
    if not rows:
        click.echo("no messages match")


@main.command()
@click.argument("run_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def report(ctx: click.Context, run_id: int, as_json: bool) -> None:
    """A run's per-rule counts and suppression reasons."""
    from .pipeline import get_report

    services = _services(ctx)
    result = get_report(services, run_id)
    click.echo(_json(result.as_dict())) if as_json else _print_run(result, services)


@main.command("runs")
@click.option("--kind", type=click.Choice([k.value for k in RunKind]))
@click.option("--status", type=click.Choice([s.value for s in RunStatus]))
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def runs_(ctx: click.Context, kind: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """Runs, newest first (`report RUN_ID` shows one)."""
    from .store.runs import list_runs

    settings = _settings(ctx)
    with _db(ctx).connect() as conn:
        items = list_runs(conn, kind=kind, status=status, limit=limit)
    if as_json:
        click.echo(_json(items))
        return
    for r in items:
        started = _local(settings, dt.datetime.fromisoformat(r["started_at"]))
        what = r["event_key"] or r["kind"]
        click.echo(f"run {r['run_id']:<6} {r['date']} {r['status']:22} {what:32} started {started}")
        if r["error"]:
            click.echo(f"  error: {r['error']}")
    if not items:
        click.echo("no runs yet: `campaign-engine run --all` runs today's scheduled rules")


@main.command("products")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def products_(ctx: click.Context, as_json: bool) -> None:
    """The product catalogue (codes that rules' `product:` and `holds contains` name)."""
    from .store.customers import list_products

    with _db(ctx).connect() as conn:
        items = list_products(conn)
    if as_json:
        click.echo(_json(items))
        return
    for p in items:
        rate = f"{float(p['rate']):.2f}%" if p.get("rate") is not None else "-"
        click.echo(f"{p['product_code']:12} {p['type']:14} {p['risk_level'] or '-':3} {rate:>7}  {p['name']}")
    if not items:
        click.echo("no products: `campaign-engine import products FILE.csv` or `demo-data`")


@main.command("customers")
@click.option("--tier", help="diamond, platinum, gold, regular, restricted (or 钻石/白金/金/普通/限制)")
@click.option("--city")
@click.option("--branch")
@click.option("--manager", "manager_id")
@click.option("--risk-level", type=click.Choice(CUSTOMER_RISK_LEVELS))
@click.option("--after", help="the last customer id of the previous page")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def customers_(ctx: click.Context, tier: str | None, city: str | None, branch: str | None, manager_id: str | None,
               risk_level: str | None, after: str | None, limit: int, as_json: bool) -> None:
    """Customers in id order, filtered (ids to preview a rule with); no contact data is shown."""
    from .store.customers import list_customers
    from .vocabulary import parse_tier

    tier_value = None
    if tier:
        try:
            tier_value = parse_tier(tier)
        except ValueError as exc:
            raise ValidationFailed([Problem(str(exc), field="tier")], what="customers filter") from None
    with _db(ctx).connect() as conn:
        items = list_customers(conn, limit=limit, after=after, tier=tier_value, city=city, branch=branch,
                               manager_id=manager_id, risk_level=risk_level)
    shown = ("customer_id", "name", "tier", "risk_level", "city", "branch", "manager_id", "birth_date", "aum")
    if as_json:
        click.echo(_json([{k: c.get(k) for k in shown} for c in items]))
        return
    for c in items:
        click.echo(f"{c['customer_id']:12} {_pad(c['name'], 8)} {c['tier']:10} {c['risk_level'] or '-':3} "
                   f"{_pad(c['city'], 6)} {_pad(c['branch'], 20)} {c['manager_id'] or '-':8} aum {c['aum']}")
    if not items:
        click.echo("no customers match")


@main.command()
@click.option("--run", "run_id", type=click.IntRange(min=1), help="The failed messages of this run.")
@click.option("--rule", "rule_id", help="The failed messages of this rule (with --run: of that run only).")
@click.option("--message", "message_ids", type=click.IntRange(min=1), multiple=True,
              help="This message (repeatable); instead of --run/--rule.")
@click.option("--status", type=click.Choice(["failed"]), default="failed", show_default=True,
              help="The status of the messages to retry.")
@click.option("--dry-run", is_flag=True, help="Render and decide, write nothing.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def retry(ctx: click.Context, run_id: int | None, rule_id: str | None, message_ids: tuple[int, ...], status: str,
          dry_run: bool, as_json: bool) -> None:
    """Render failed messages again with the live rule and template and queue them: the same message,
    under the same idempotency key, with the contact policy decided again now (exit 1 when any stays failed)."""
    from .pipeline.retry import RetryRequest, retry_messages
    from .store import audit

    request = RetryRequest(message_ids=message_ids, run_id=run_id, rule_id=rule_id, status=status,
                           dry_run=dry_run)
    services = _services(ctx)
    result = retry_messages(services, request, now=_now(), actor="cli")
    if not dry_run and result.messages:
        with services.db.begin() as conn:
            audit.record(conn, actor="cli", action="messages.retry", target=result.audit_target(), now=_now(),
                         details=result.audit_details())
    if as_json:
        click.echo(_json(result.as_dict()))
    else:
        skips = ", ".join(f"{k}={v}" for k, v in sorted(result.skips().items()))
        verb = "would retry" if dry_run else "retried"
        click.echo(f"{'dry run: ' if dry_run else ''}{verb} {result.retried} message(s), skipped {result.skipped}"
                   + (f" ({skips})" if skips else ""))
        skipped = [m for m in result.messages if m.skipped_because]
        for m in skipped[:RETRY_LINES]:
            click.echo(f"  #{m.id} {m.status or '-'}: {m.skipped_because}" + (f": {m.error}" if m.error else ""))
        if len(skipped) > RETRY_LINES:
            click.echo(f"  ... and {len(skipped) - RETRY_LINES} more (--json lists every message)")
    if result.unresolved:
        sys.exit(1)


RETRY_LINES = 50  # skipped messages listed by `retry` without --json


def _date_option(value: str | None, name: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date YYYY-MM-DD", param_hint=name) from None


def _percent(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def _print_effect(result: Any, services: Any) -> None:
    """An effect report for a person: the verdict first, then each arm, the lift and what it caused."""
    data = result.as_dict()
    rule = services.rulebook.get(data["rule"])
    goal = rule.goal if rule is not None else None
    what = f"goal {goal.type.value}" if goal else "goal"
    if goal and (goal.product_code or goal.product_type):
        what += f" of {goal.product_code or goal.product_type}"
    period = f"{data['from'] or '…'} .. {data['to'] or '…'}"
    click.echo(f"{data['rule']} {rule.name if rule else ''}".rstrip()
               + f": contacts {period}, {what} within {data['window_days']} days")
    click.echo("readable: yes" if data["readable"] else f"readable: no: {data['reason']}")
    for arm in ("treated", "holdout"):
        a = data[arm]
        ci = f" [{_percent(a['ci'][0])}, {_percent(a['ci'][1])}]" if a["ci"] else ""
        click.echo(f"  {arm:8} n={a['n']:,}  converted={a['conversions']:,}  rate={_percent(a['rate'])}{ci}  "
                   f"amount={a['amount']:,.2f}")
    lift = data["lift"]
    if lift["absolute"] is not None:
        relative = f"  relative {lift['relative'] * 100:+.1f}%" if lift["relative"] is not None else ""
        click.echo(f"  lift     {lift['absolute'] * 100:+.2f} pp [{lift['ci'][0] * 100:+.2f}, "
                   f"{lift['ci'][1] * 100:+.2f}]{relative}  p={lift['p_value']:.3g}")
        inc = data["incremental"]
        click.echo(f"  caused   {inc['conversions']:,.1f} conversions, amount {inc['amount']:,.2f}")
    click.echo(f"  success rate (精准营销成功率, converted of contacted): {_percent(data['success_rate'])}")


@main.command("effect")
@click.option("--rule", "rule_id", help="One rule (default: every live rule with a goal).")
@click.option("--from", "date_from", help="First local day of contacts, YYYY-MM-DD (default: the first).")
@click.option("--to", "date_to", help="Last local day of contacts, included (default: today).")
@click.option("--run", "run_id", type=click.IntRange(min=1), help="Only this run's contacts.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def effect(ctx: click.Context, rule_id: str | None, date_from: str | None, date_to: str | None,
           run_id: int | None, as_json: bool) -> None:
    """A rule's effect: its contacts against its holdout, with 95 % intervals (read it once, at the end)."""
    from .pipeline.effect import EffectRequest, effect_report, rules_with_goals

    services = _services(ctx)
    first, last = _date_option(date_from, "--from"), _date_option(date_to, "--to")
    rule_ids = [rule_id] if rule_id else rules_with_goals(services)
    reports = [effect_report(services, EffectRequest(r, first, last, run_id), now=_now()) for r in rule_ids]
    if as_json:
        click.echo(_json(reports[0].as_dict() if rule_id else [r.as_dict() for r in reports]))
        return
    if not reports:
        click.echo("no live rule has a goal: add `goal: {type: ..., within_days: 14}` to a rule file")
    for n, result in enumerate(reports):
        if n:
            click.echo("")
        _print_effect(result, services)


@main.group()
def apikey() -> None:
    """API keys (stored hashed; a key is shown once)."""


@apikey.command("create")
@click.option("--role", required=True, type=click.Choice([role.value for role in Role]))
@click.option("--name", required=True, help="Who or what uses the key, e.g. core-banking.")
@click.option("--manager", "manager_id", help="Role manager: the manager id the key acts as (it sees and closes "
                                              "only that manager's tasks); required for that role, refused for others.")
@click.pass_context
@_guard
def apikey_create(ctx: click.Context, role: str, name: str, manager_id: str | None) -> None:
    """Create a key and print it once."""
    from .store import apikeys, audit
    from .store import managers as manager_store

    if role == Role.MANAGER and not manager_id:
        raise click.UsageError("--role manager needs --manager ID: the manager the key acts as")
    if role != Role.MANAGER and manager_id is not None:
        raise click.UsageError(f"--manager binds a key of role manager only, not {role}")
    details: dict[str, Any] = {"role": role}
    with _db(ctx).begin() as conn:
        if manager_id is not None:
            manager = manager_store.get_manager(conn, manager_id)
            if manager is None:
                raise NotFound("manager", manager_id, "import it first: `campaign-engine import managers FILE.csv`")
            if not manager["active"]:
                click.echo(f"warning: manager {manager_id} is inactive: its customers' tasks go to the branch queue",
                           err=True)
            details["manager"] = manager_id
        key_id, key = apikeys.create_key(conn, name=name, role=role, now=_now(), manager_id=manager_id)
        audit.record(conn, actor="cli", action="apikey.create", target=f"key:{name}#{key_id}", now=_now(),
                     details=details)
    click.echo(key)
    bound = f", manager {manager_id}" if manager_id else ""
    click.echo(f"key #{key_id} for {name} ({role}{bound}); store it now: it cannot be shown again", err=True)


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
            bound = f" manager {k['manager_id']}" if k["manager_id"] else ""
            click.echo(f"#{k['id']} {k['prefix']}… {k['name']} {k['role']}{bound} {state}, {used}")


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


@main.group()
def user() -> None:
    """Console users (passwords stored hashed; `serve` serves the console at /console)."""


def _read_password() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 10:
        raise click.UsageError("the password (one line on standard input) needs at least 10 characters")
    return password


@user.command("create")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice([role.value for role in Role]))
@click.option("--manager-id", help="Role manager: the relationship manager the user is (sees only their tasks).")
@click.option("--password-stdin", is_flag=True, required=True,
              help="Read the password from the first line of standard input (never from the command line).")
@click.pass_context
@_guard
def user_create(ctx: click.Context, name: str, role: str, manager_id: str | None, password_stdin: bool) -> None:
    """Create a console user: `echo "$PASSWORD" | campaign-engine user create NAME --role admin --password-stdin`."""
    from .store import audit, users
    from .store import managers as manager_store

    if not re.fullmatch(r"[A-Za-z0-9_.@-]{2,64}", name):
        raise click.UsageError("NAME: 2-64 letters, digits or . _ @ -")
    if role == Role.MANAGER and not manager_id:
        raise click.UsageError("--role manager needs --manager-id ID: the manager the user is")
    if role != Role.MANAGER and manager_id is not None:
        raise click.UsageError(f"--manager-id binds a user of role manager only, not {role}")
    password = _read_password()
    with _db(ctx).begin() as conn:
        if manager_id is not None and manager_store.get_manager(conn, manager_id) is None:
            raise NotFound("manager", manager_id, "import it first: `campaign-engine import managers FILE.csv`")
        users.create_user(conn, name=name, password=password, role=role, manager_id=manager_id, now=_now())
        details: dict[str, Any] = {"role": role}
        if manager_id:
            details["manager"] = manager_id
        audit.record(conn, actor="cli", action="user.create", target=f"user:{name}", now=_now(), details=details)
    click.echo(f"user {name} ({role}) created; sign in at /console/login")


@user.command("disable")
@click.argument("name")
@click.pass_context
@_guard
def user_disable(ctx: click.Context, name: str) -> None:
    """Disable a user at once: their sessions stop working on every server."""
    _set_user_disabled(ctx, name, True)
    click.echo(f"user {name} disabled; their sessions have ended")


def _set_user_disabled(ctx: click.Context, name: str, disabled: bool) -> None:
    from .store import audit, users

    with _db(ctx).begin() as conn:
        if not users.set_disabled(conn, name, disabled, _now()):
            raise NotFound("enabled user" if disabled else "disabled user", name)
        audit.record(conn, actor="cli", action="user.disable" if disabled else "user.enable", target=f"user:{name}",
                     now=_now())


@user.command("enable")
@click.argument("name")
@click.pass_context
@_guard
def user_enable(ctx: click.Context, name: str) -> None:
    """Let a disabled user sign in again."""
    _set_user_disabled(ctx, name, False)
    click.echo(f"user {name} enabled")


@user.command("password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, required=True, help="Read the new password from standard input.")
@click.pass_context
@_guard
def user_password(ctx: click.Context, name: str, password_stdin: bool) -> None:
    """Set a new password (their open sessions end)."""
    from .store import audit, users

    password = _read_password()
    with _db(ctx).begin() as conn:
        if not users.set_password(conn, name, password, _now()):
            raise NotFound("user", name)
        audit.record(conn, actor="cli", action="user.password", target=f"user:{name}", now=_now())
    click.echo(f"password of {name} changed; their sessions have ended")


@user.command("list")
@click.pass_context
@_guard
def user_list(ctx: click.Context) -> None:
    """Users with role, manager, state and last sign-in (never a password)."""
    from .store import users

    with _db(ctx).connect() as conn:
        rows = users.list_users(conn)
    if not rows:
        click.echo("no console users (create one: `campaign-engine user create NAME --role admin --password-stdin`)")
    for u in rows:
        last = f"last sign-in {u['last_login_at']:%Y-%m-%d %H:%M}" if u["last_login_at"] else "never signed in"
        bound = f" ({u['manager_id']})" if u["manager_id"] else ""
        click.echo(f"{u['name']} {u['role']}{bound} {'disabled' if u['disabled'] else 'enabled'}"
                   f"{' (demo)' if u['demo'] else ''}, {last}")


@main.group()
def managers() -> None:
    """Relationship managers (客户经理; `import managers FILE.csv` loads them)."""


@managers.command("list")
@click.option("--branch", help="Only this branch's managers.")
@click.option("--active/--inactive", default=None, help="Only active (or inactive) managers.")
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def managers_list(ctx: click.Context, branch: str | None, active: bool | None, limit: int, as_json: bool) -> None:
    """Managers in id order with branch and daily capacity; mobile and email as `cli_contact_data` says."""
    from .masking import shown
    from .store import managers as manager_store

    settings = _settings(ctx)
    with _db(ctx).connect() as conn:
        rows = manager_store.list_managers(conn, branch=branch, active=active, limit=limit)
    rows = [shown(r, ("mobile", "email"), settings.cli_contact_data) for r in rows]
    if as_json:
        click.echo(_json(rows))
        return
    if not rows:
        click.echo("no managers match (import them: `campaign-engine import managers FILE.csv`)")
    for r in rows:
        click.echo(f"{r['manager_id']} {r['name']} {r['branch'] or '-'} calls {r['daily_call_capacity']}/day "
                   f"visits {r['daily_visit_capacity']}/day {'active' if r['active'] else 'inactive'} "
                   f"{r['mobile'] or '-'} {r['email'] or '-'}")


@main.command()
@click.option("--bind", default="127.0.0.1:8000", show_default=True, help="gunicorn bind address.")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option("--no-scheduler", is_flag=True, help="API only (run `campaign-engine scheduler` elsewhere).")
@click.pass_context
@_guard
def serve(ctx: click.Context, bind: str, workers: int, no_scheduler: bool) -> None:
    """The API under gunicorn, and the scheduler in this process."""
    import subprocess

    from .demo.users import demo_login
    from .settings import DEV_SECRET_KEY

    metrics_dir = _multiprocess_metrics()  # before anything counts: gunicorn's workers and this scheduler
    _services(ctx)  # fail here, clearly, if settings, rules or the schema are wrong
    host, _, port = bind.rpartition(":")
    click.echo(f"console: http://{host or '127.0.0.1'}:{port}/console  (API docs: /api/v1/docs)", err=True)
    if _settings(ctx).secret_key == DEV_SECRET_KEY:
        click.echo("warning: secret_key is the development default, which signs console sessions and "
                   "unsubscribe links: set CAMPAIGN_ENGINE_SECRET_KEY outside a demo", err=True)
    login = demo_login(_db(ctx))
    if login is not None:
        click.echo(f"demo login (this demo database only): {login[0]} / {login[1]}", err=True)
    command = [sys.executable, "-m", "gunicorn", "--bind", bind, "--workers", str(workers),
               "--access-logfile", "-", "-c", "python:campaign_engine.gunicorn_conf",
               "campaign_engine.api:create_app()"]
    log_format = ctx.obj.get("log_format") or _settings(ctx).log_format
    if log_format == "json":  # the access log as JSON lines too, and the workers' own logs (create_app)
        command[-1:-1] = ["--access-logformat", ACCESS_LOG_JSON]
    env = {**os.environ, "CAMPAIGN_ENGINE_LOG_FORMAT": log_format}
    server = subprocess.Popen(command, env=env)
    try:
        if no_scheduler:
            import signal

            def stop(_signum: int, _frame: Any) -> None:  # a SIGTERM to this process stops gunicorn too
                raise SystemExit(0)

            signal.signal(signal.SIGTERM, stop)
            server.wait()
        else:
            _run_scheduler(ctx)
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _multiprocess_metrics() -> str | None:
    """Point prometheus-client's multiprocess mode at a fresh folder for this command and the
    processes it starts (each counts in its own files; a scrape adds them up). None when the
    environment already names one (the operator's choice) or counting has begun in this process."""
    import tempfile

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    if "prometheus_client" in sys.modules:
        click.echo("warning: metrics are counted per process (prometheus_client imported too early)", err=True)
        return None
    folder = tempfile.mkdtemp(prefix="campaign-engine-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    return folder


# gunicorn's access log as one JSON object per line (its %-atoms; the path without the query string,
# which may carry a customer id or a mobile number)
ACCESS_LOG_JSON = ('{"time": "%(t)s", "logger": "gunicorn.access", "method": "%(m)s", "path": "%(U)s", '
                   '"status": %(s)s, "bytes": "%(B)s", "duration_us": %(D)s, "remote": "%(h)s"}')


def _run_scheduler(ctx: click.Context) -> None:
    from .runtime import Runtime
    from .scheduler import default_owner, run_scheduler_forever

    runtime = Runtime(_services(ctx))
    click.echo(f"scheduler {default_owner()} running; follows published rules, SIGTERM stops", err=True)
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
    metrics_dir = _multiprocess_metrics() if settings.metrics_port else None  # the prefork children count too
    _services(ctx).close()  # fail here, clearly, if settings, rules or the schema are wrong
    if settings.metrics_port:
        from . import metrics

        metrics.serve_on_port(settings.metrics_port, _db(ctx), _now)
        click.echo(f"metrics on :{settings.metrics_port}/metrics", err=True)
    if metrics_dir is not None:
        ctx.call_on_close(lambda: shutil.rmtree(metrics_dir, ignore_errors=True))
    argv = ["worker", f"--loglevel={loglevel}", "--queues", settings.celery_queue, "--without-gossip",
            "--without-mingle", "--pool", "prefork"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    configure(settings).worker_main(argv)


@main.command()
@click.option("--once", is_flag=True, help="Send what is due now, then exit (default: keep running).")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=200, show_default=True)
@_QUIET
@click.pass_context
@_guard
def send(ctx: click.Context, once: bool, batch_size: int, quiet: bool) -> None:
    """The delivery worker: claim due messages, re-check the contact policy, send, record outcomes."""
    import signal
    import threading

    from .delivery.factory import build_delivery_worker

    delivery = build_delivery_worker(_settings(ctx), _db(ctx), batch_size=batch_size, clock=_now)
    worker = delivery.worker
    if _settings(ctx).metrics_port and not once:  # a long-running sender is scraped on its own port
        from . import metrics

        metrics.serve_on_port(_settings(ctx).metrics_port, _db(ctx), _now)
        click.echo(f"metrics on :{_settings(ctx).metrics_port}/metrics", err=True)
    try:
        shared_at = delivery.shared_rates_at()
        if shared_at:
            click.echo(f"send rates shared through Redis at {shared_at}", err=True)
        if once:
            from .progress import Progress
            from .store import gauges

            with _db(ctx).connect() as conn:
                due = None if quiet else gauges.due_now(conn, _now())
            with Progress("send", due or None, unit="messages", quiet=quiet) as bar:
                totals = worker.run_until_idle(on_pass=lambda t: bar.update(
                    sum(t.get(k, 0) for k in ("sent", "failed", "retried", "stale", "held_back"))))
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
@click.argument("channel", type=click.Choice(["sms", "email", "call"]))
@click.argument("address")
@click.option("--reason", required=True,
              help="e.g. complaint, bounced; for call, wrong_number also stops SMS to the mobile.")
@click.pass_context
@_guard
def suppress_add(ctx: click.Context, channel: str, address: str, reason: str) -> None:
    """Never contact this number or address again on CHANNEL (checked when queuing and before
    sending); call: no manager's call task to this mobile."""
    from .store import audit, suppression

    with _db(ctx).begin() as conn:
        suppression.add(conn, channel=channel, address=address, reason=reason, source="cli", now=_now())
        audit.record(conn, actor="cli", action="suppression.add", target=channel, now=_now(),
                     details={"reason": reason})
    click.echo(f"{channel} {suppression.normalize(channel, address)} suppressed")


@suppress.command("remove")
@click.argument("channel", type=click.Choice(["sms", "email", "call"]))
@click.argument("address")
@click.pass_context
@_guard
def suppress_remove(ctx: click.Context, channel: str, address: str) -> None:
    """Take a number or address off the list (call: also a manager's wrong_number flag, which
    stops SMS to the mobile as well)."""
    from .store import audit, suppression

    with _db(ctx).begin() as conn:
        if not suppression.remove(conn, channel=channel, address=address):
            raise NotFound("suppressed address", address)
        audit.record(conn, actor="cli", action="suppression.remove", target=channel, now=_now())
    click.echo(f"{channel} {suppression.normalize(channel, address)} removed")


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


@main.group()
def audit() -> None:
    """The audit log: who changed what, when."""


def _audit_bound(settings: Settings, value: str | None, name: str, *, upper: bool) -> dt.datetime | None:
    """--from/--to: a date-time with offset, or a date: the start of that day in the configured time
    zone (for --to the start of the next day: the day is included). --to is exclusive."""
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            try:
                return dt.datetime.combine(day + dt.timedelta(days=1 if upper else 0), dt.time(), settings.tz)
            except OverflowError:  # the day after 9999-12-31: no upper bound
                return None
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise click.BadParameter(f"{value!r} is not a date YYYY-MM-DD nor a date-time with its offset "
                                 "(2026-03-10T09:00:00+08:00)", param_hint=name)
    return moment


@audit.command("list")
@click.option("--action", help="An action (rules.approve), or a prefix ending in . or * (rules.*).")
@click.option("--actor", help="key:alice#3, cli or cli:alice exactly; a bare name (alice) also finds every "
                              "key named so and cli:alice.")
@click.option("--from", "from_", help="At or after: YYYY-MM-DD (local day) or a date-time with offset.")
@click.option("--to", "to", help="Before: YYYY-MM-DD (that day included) or a date-time with offset.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def audit_list(ctx: click.Context, action: str | None, actor: str | None, from_: str | None, to: str | None,
               limit: int, as_json: bool) -> None:
    """Audit entries, newest first."""
    from .store.audit import list_entries

    settings = _settings(ctx)
    since = _audit_bound(settings, from_, "--from", upper=False)
    until = _audit_bound(settings, to, "--to", upper=True)
    with _db(ctx).connect() as conn:
        rows = list_entries(conn, action=action or None, actor=actor or None, since=since, until=until,
                            limit=limit)
    if as_json:
        click.echo(_json([{**r, "at": r["at"].isoformat()} for r in rows]))
        return
    for r in rows:
        details = json.dumps(r["details"], ensure_ascii=False, separators=(",", ":"), default=str) \
            if r["details"] else ""
        click.echo(f"{_local(settings, r['at'])} {_pad(r['actor'], 18)} {_pad(r['action'], 20)} "
                   f"{r['target'] or '-'} {details}".rstrip())
    if not rows:
        click.echo("no audit entries match")


# --------------------------------------------------------------------------- relationship-manager tasks

from .vocabulary import TaskOutcome, TaskStatus  # noqa: E402  (kept with the commands that use them)


@main.group()
def tasks() -> None:
    """Relationship-manager tasks (电联 calls, 面谈 visits): the work list, outcomes, reports."""


def _cli_viewer(as_: str | None = None):  # type: ignore[no-untyped-def]
    """The CLI runs on the server: it sees every task and closes any, as an operator does."""
    from .pipeline.tasks import Viewer

    return Viewer(actor=_cli_actor(as_), role=Role.OPERATOR)


class _TaskId(click.ParamType):
    """A task's id, as `tasks list` shows it after `#`: a whole number from 1."""

    name = "task_id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        text = str(value).strip().lstrip("#")
        if text.isascii() and text.isdigit() and int(text) >= 1:
            return int(text)
        self.fail(f"the task id must be a number (as `tasks list` shows it, e.g. 4711), not {value!r}", param, ctx)


TASK_ID = _TaskId()


def _task_line(settings: Settings, t: dict[str, Any]) -> str:
    owner = t["manager_id"] or f"queue:{t['branch'] or '-'}"
    flag = " OVERDUE" if t["overdue"] else ""
    outcome = f" {t['outcome']}" if t["outcome"] else ""
    return (f"#{t['id']} {t['status']:7} due {_local(settings, t['due_at'])} {t['type_name']} p{t['priority']} "
            f"{t['customer_id']} {_pad(t['customer_name'], 8)} {t['mobile'] or '-'} {owner} "
            f"{t['rule_id']} {t['rule_name'] or ''}".rstrip() + outcome + flag)


def _task_json(t: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v) for k, v in t.items()}


def _shown_task(settings: Settings, t: dict[str, Any]) -> dict[str, Any]:
    from .masking import shown

    return shown(t, ("mobile",), settings.cli_contact_data)


@tasks.command("list")
@click.option("--manager", "manager_id", help="One manager's tasks.")
@click.option("--branch", help="The customers' branch (a supervisor's scope).")
@click.option("--queue/--assigned", default=None, help="Only the branch queues' tasks (no manager), or only assigned.")
@click.option("--status", type=click.Choice([s.value for s in TaskStatus]))
@click.option("--due-before", help="YYYY-MM-DD (due on or before that local day) or a date-time with offset.")
@click.option("--overdue", is_flag=True, help="Only open tasks past due by the SLA (flagged overdue).")
@click.option("--rule", "rule_id")
@click.option("--run", "run_id", type=click.IntRange(min=1))
@click.option("--customer", "customer_id")
@click.option("--after", help="The `next` cursor of the previous page (--json prints it).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def tasks_list(ctx: click.Context, manager_id: str | None, branch: str | None, queue: bool | None,
               status: str | None, due_before: str | None, overdue: bool, rule_id: str | None, run_id: int | None,
               customer_id: str | None, after: str | None, limit: int, as_json: bool) -> None:
    """Tasks in due order (earliest first); mobiles as `cli_contact_data` says."""
    from .pipeline.tasks import TaskQuery, list_tasks

    settings = _settings(ctx)
    query = TaskQuery(manager_id=manager_id, branch=branch, queue=queue, status=status,
                      due_before=_audit_bound(settings, due_before, "--due-before", upper=True),
                      overdue=True if overdue else None, rule_id=rule_id, run_id=run_id, customer_id=customer_id,
                      after=after, limit=limit)
    page = list_tasks(_services(ctx), query, _cli_viewer())
    items = [_shown_task(settings, t) for t in page.items]
    if as_json:
        click.echo(_json({"items": [_task_json(t) for t in items], "next": page.next}))
        return
    for t in items:
        click.echo(_task_line(settings, t))
    if not items:
        click.echo("no tasks match")
    elif page.next:
        click.echo(f"more: --after {page.next}")


@tasks.command("show")
@click.argument("task_id", type=TASK_ID)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def tasks_show(ctx: click.Context, task_id: int, as_json: bool) -> None:
    """One task with its talking points."""
    from .pipeline.tasks import get_task

    settings = _settings(ctx)
    t = _shown_task(settings, get_task(_services(ctx), task_id, _cli_viewer()))
    if as_json:
        click.echo(_json(_task_json(t)))
        return
    click.echo(_task_line(settings, t))
    click.echo(f"  run {t['run_id']}, alerts {t['alerts']}, created {_local(settings, t['created_at'])}"
               + (f", overdue since {_local(settings, t['overdue_at'])}" if t["overdue_at"] else ""))
    if t["completed_at"]:
        click.echo(f"  closed {_local(settings, t['completed_at'])} by {t['completed_by']}: {t['outcome']}"
                   + (f", next contact {t['next_contact_on']}" if t["next_contact_on"] else ""))
    if t["note"]:
        click.echo(f"  note: {t['note']}")
    for line in (t["talking_points"] or "").splitlines():
        click.echo(f"  | {line}")


@tasks.command("done")
@click.argument("task_id", type=TASK_ID)
@click.option("--outcome", required=True, type=click.Choice([o.value for o in TaskOutcome]),
              help="refused withdraws phone consent; wrong_number stops calls and SMS to the mobile; "
                   "interested/converted record a conversion.")
@click.option("--note", help="What was said (stored with the task).")
@click.option("--next-contact-on", help="YYYY-MM-DD: when to contact the customer again.")
@click.option("--as", "as_", help="Your name (default: the OS user).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def tasks_done(ctx: click.Context, task_id: int, outcome: str, note: str | None, next_contact_on: str | None,
               as_: str | None, as_json: bool) -> None:
    """Close an open task with its outcome (exit 1 when it is not open)."""
    from .pipeline.tasks import OutcomeRequest, record_outcome

    settings = _settings(ctx)
    request = OutcomeRequest(TaskOutcome(outcome), note=note,
                             next_contact_on=_date_option(next_contact_on, "--next-contact-on"))
    t = _shown_task(settings, record_outcome(_services(ctx), task_id, request, _cli_viewer(as_), now=_now()))
    click.echo(_json(_task_json(t)) if as_json else _task_line(settings, t))


@tasks.command("assign")
@click.argument("task_id", type=TASK_ID)
@click.option("--manager", "manager_id", required=True, help="The active manager to take the task, e.g. M030.")
@click.option("--note", help="Why (kept in the audit log).")
@click.option("--as", "as_", help="Your name (default: the OS user).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def tasks_assign(ctx: click.Context, task_id: int, manager_id: str, note: str | None, as_: str | None,
                 as_json: bool) -> None:
    """Give an open task (a branch queue's, or another manager's) to an active manager; it takes a
    place on their list on its due day. Exit 2 for an unknown task or an unknown or inactive
    manager, 1 when the task is not open or the manager's day is full."""
    from .pipeline.tasks import AssignRequest, assign_task

    settings = _settings(ctx)
    t = _shown_task(settings, assign_task(_services(ctx), task_id, AssignRequest(manager_id, note=note),
                                          _cli_viewer(as_), now=_now()))
    click.echo(_json(_task_json(t)) if as_json else _task_line(settings, t))


@tasks.command("report")
@click.option("--rule", "rule_id")
@click.option("--run", "run_id", type=click.IntRange(min=1))
@click.option("--manager", "manager_id")
@click.option("--from", "date_from", help="Tasks created from this local day, YYYY-MM-DD.")
@click.option("--to", "date_to", help="To this local day, included.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def tasks_report(ctx: click.Context, rule_id: str | None, run_id: int | None, manager_id: str | None,
                 date_from: str | None, date_to: str | None, as_json: bool) -> None:
    """Per rule: created, open, done, overdue, expired, by outcome; per manager: the same and the
    conversion rate (converted / done)."""
    from .pipeline.tasks import ReportRequest, task_report

    request = ReportRequest(rule_id=rule_id, run_id=run_id, manager_id=manager_id,
                            date_from=_date_option(date_from, "--from"), date_to=_date_option(date_to, "--to"))
    result = task_report(_services(ctx), request, _cli_viewer())
    if as_json:
        click.echo(_json(result))
        return

    def counts(c: dict[str, Any]) -> str:
        outcomes = " ".join(f"{k}={v}" for k, v in sorted(c["by_outcome"].items()))
        return (f"created {c['created']} open {c['open']} done {c['done']} overdue {c['overdue']} "
                f"(open {c['overdue_open']}) expired {c['expired']} cancelled {c['cancelled']}"
                + (f"  {outcomes}" if outcomes else ""))

    click.echo("per rule" + (f" (run {run_id})" if run_id else "") + ":")
    for r in result["rules"]:
        click.echo(f"  {r['rule']} {r['name'] or ''}: {counts(r)}")
    click.echo("per manager:")
    for m in result["managers"]:
        who = f"queue {m['branch']}" if m["queue"] else f"{m['manager_id']} {m['name'] or ''}"
        click.echo(f"  {who}: {counts(m)}  conversion {_percent(m['conversion_rate'])}")
    if not result["rules"]:
        click.echo("  no tasks match")


@tasks.command("sweep")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_guard
def tasks_sweep(ctx: click.Context, as_json: bool) -> None:
    """Once, now, what the scheduler does every minute: flag overdue tasks, expire old ones, write the
    managers' daily digests that are due."""
    from .pipeline.tasks import sweep

    done = sweep(_services(ctx), _now())
    click.echo(_json(done) if as_json else ", ".join(f"{k} {v}" for k, v in done.items()))


if __name__ == "__main__":
    main()
