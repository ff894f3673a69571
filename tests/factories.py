"""Test data: factories for customers, deposits and products, and a rule/template folder per test."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaign_engine.bootstrap import open_services
from campaign_engine.store.models import Message
from campaign_engine.store.upsert import upsert_rows

TODAY = dt.date(2026, 3, 10)
NOW = dt.datetime(2026, 3, 10, 1, 0, tzinfo=dt.timezone.utc)

GREETING_SMS = "{{ customer.name | salutation(customer.gender) }}，{{ rule.name }}"
EMAIL_PARTS = {
    "email.subject.j2": "{{ rule.name }}",
    "email.txt.j2": "{{ customer.name | salutation(customer.gender) }}：{{ rule.name }}",
}


def customer(customer_id: str, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict(
        customer_id=customer_id, name="张伟", gender="M", birth_date=dt.date(1980, 5, 1),
        mobile="13800000000", email=f"{customer_id.lower()}@example.com", city="北京", branch="北京分行",
        tier="gold", risk_level="C3", aum=Decimal("300000"), rate_sensitive=False, sms_consent=True,
        email_consent=True, do_not_contact=False, language="zh", manager_id="RM0001")
    row.update(overrides)
    return row


def deposit(deposit_id: str, customer_id: str, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict(
        deposit_id=deposit_id, customer_id=customer_id, product_code="TD1Y", account_no="6222020012345678",
        amount=Decimal("80000"), rate=Decimal("1.45"), open_date=dt.date(2025, 3, 17),
        maturity_date=TODAY + dt.timedelta(days=5), auto_renew=False)
    row.update(overrides)
    return row


PRODUCTS = [
    dict(product_code="TD1Y", name="1年期定期存款", type="time_deposit", risk_level="R1", rate=Decimal("1.45"),
         min_amount=Decimal("50"), launch_date=dt.date(2020, 1, 1)),
    dict(product_code="FUND-EQ01", name="成长股票基金", type="fund", risk_level="R4", rate=None,
         min_amount=Decimal("1000"), launch_date=dt.date(2024, 1, 1)),
]


def publish_rules(settings: Any, *, note: str = "test fixture", author: str = "cli:fixture",
                  now: dt.datetime = NOW) -> list[dict[str, Any]]:
    """What a marketer does before anything runs: submit every rule file of settings' folders, with
    approval off (a fixture's database); the drafts, invalid ones included (their problems kept)."""
    from campaign_engine.pipeline.publishing import publish_folder
    from campaign_engine.vocabulary import Approval

    services = open_services(settings.replace(approval=Approval.OFF))
    try:
        return publish_folder(services, None, note=note, author=author, now=now)
    finally:
        services.close()


class World:
    """A rule folder, a template folder and a database, built per test.

    `services()` publishes the folders first (approval off), as authors would before a run: tests
    of the publishing workflow itself drive campaign_engine.pipeline.publishing directly.
    """

    def __init__(self, settings, engine, root: Path):
        self.engine = engine
        self.opened: list[Any] = []
        self.drafts: list[dict[str, Any]] = []
        self.settings = settings.replace(rules_dir=root / "rules", templates_dir=root / "templates")
        self.settings.rules_dir.mkdir()
        self.settings.templates_dir.mkdir()
        self.template("greet", {"sms.txt.j2": GREETING_SMS, **EMAIL_PARTS})
        with engine.begin() as conn:
            upsert_rows(conn, "products", [dict(p) for p in PRODUCTS], now=NOW, source="test")

    def template(self, name: str, parts: dict[str, str]) -> None:
        folder = self.settings.templates_dir / name
        folder.mkdir(exist_ok=True)
        for part, text in parts.items():
            (folder / part).write_text(text, encoding="utf-8")

    def rule(self, file: str, text: str) -> None:
        (self.settings.rules_dir / file).write_text(text, encoding="utf-8")

    def add(self, kind: str, *rows: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            upsert_rows(conn, kind, list(rows), now=NOW, source="test")

    def publish(self) -> list[dict[str, Any]]:
        """Publish the rule folder (approval off); the drafts of this publish."""
        self.drafts = publish_rules(self.settings)
        return self.drafts

    @property
    def problems(self) -> list[dict[str, Any]]:
        """The problems of the last publish's drafts (what `rules publish` reports)."""
        return [p for d in self.drafts for p in d["problems"]]

    def services(self, *, publish: bool = True):
        if publish:
            self.publish()
        services = open_services(self.settings)
        self.opened.append(services)
        return services

    def messages(self, **where: Any) -> list[Any]:
        with Session(self.engine) as session:
            return list(session.scalars(select(Message).filter_by(**where).order_by(Message.id)))


def rule_yaml(rule_id: str, conditions: str, *, category: str = "marketing", trigger: str | None = None,
              channels: str = "[sms, email]", template: str = "greet", priority: int = 50,
              extra: str = "") -> str:
    trigger = trigger or '{schedule: "0 9 * * *", subject: customer}'
    return (f"id: {rule_id}\nname: 测试{rule_id}\ncategory: {category}\npriority: {priority}\n"
            f"trigger: {trigger}\nconditions:\n{conditions}\nchannels: {channels}\ntemplate: {template}\n{extra}")


BIRTHDAY = "  customer.days_to_birthday: 0\n"


def run_day(services: Any, *, today: dt.date, now: dt.datetime, rule_ids: Any = None,
            dry_run: bool = False) -> dict[str, Any]:
    """Scheduled rules for a date through the run lifecycle, waited for; the report as the CLI's --json."""
    from campaign_engine.pipeline import ScheduledRunRequest, start_run

    request = ScheduledRunRequest(today, tuple(rule_ids or ()), dry_run=dry_run)
    return start_run(services, request, now=now).as_dict()


def fire_event(services: Any, event_type: Any, payload: Any, *, now: dt.datetime,
               dry_run: bool = False) -> dict[str, Any]:
    """An event payload validated at the edge and run through the lifecycle, waited for."""
    from campaign_engine.events import parse_event
    from campaign_engine.pipeline import EventRunRequest, start_run

    return start_run(services, EventRunRequest(parse_event(event_type, payload), dry_run=dry_run),
                     now=now).as_dict()


def world_cli(world: World) -> Any:
    """`campaign-engine` in this process on the world's database, rule folder and templates."""
    from click.testing import CliRunner

    from campaign_engine.cli import main

    env = {"CAMPAIGN_ENGINE_DATABASE_URL": world.settings.database_url,
           "CAMPAIGN_ENGINE_RULES_DIR": str(world.settings.rules_dir),
           "CAMPAIGN_ENGINE_TEMPLATES_DIR": str(world.settings.templates_dir),
           "CAMPAIGN_ENGINE_APPROVAL": "off"}  # a fixture's database, published with approval off (publish_rules)
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        world.publish()  # the rule folder as published, as a marketer would before running anything
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)
    return invoke
