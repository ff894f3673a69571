"""The starter rule pack (rules/) and its templates (templates/) as shipped.

Every rule loads, and every channel it lists renders against the field catalogue's
sample context, also when nullable values are missing; SMS stay within the parts
budget of /work/shared/BANK_SMS_NOTES.md (one part where possible, two at most).
"""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from ruamel.yaml import YAML

from campaign_engine.rendering import build_environment, load_template_set, render_message
from campaign_engine.rulebook.fields import sample_namespaces
from campaign_engine.rulebook.loader import load_rulebook
from campaign_engine.rulebook.samples import sample_context
from campaign_engine.rulebook.model import Predicate, referenced_fields
from campaign_engine.settings import DEFAULTS_FILE, PROJECT_ROOT

RULES_DIR = PROJECT_ROOT / "rules"
TEMPLATES_DIR = PROJECT_ROOT / "templates"
STARTER_RULES = {
    "birthday-greeting": "marketing",
    "td-maturity-reminder": "service",
    "rate-change-notice": "service",
    "product-launch": "marketing",
    "holiday-greeting": "marketing",
    "large-transaction-followup": "service",
    "large-transaction-call": "marketing",  # a retention and wealth-marketing call: phone consent
    "td-maturity-visit": "service",
    "lunar-birthday-greeting": "marketing",
}
# Values the database or an event payload may leave null; templates must not print "None".
NULLABLE = (
    "customer.gender", "customer.manager_id", "customer.branch", "customer.city",
    "customer.email", "customer.risk_level", "customer.risk_rank",
    "deposit.product", "deposit.rate", "deposit.open_date", "deposit.payout_date",
    "deposit.business_days_to_maturity", "customer.days_to_lunar_birthday",
    "calendar.holiday", "calendar.holiday_day", "calendar.is_workday", "calendar.festival", "calendar.solar_term",
    "event.product_type", "event.product.rate", "event.product.min_amount",
)
VARIANTS = ("sample", "unknown_gender", "nulls")


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return YAML(typ="safe").load(DEFAULTS_FILE.read_text(encoding="utf-8-sig"))


@pytest.fixture(scope="module")
def rulebook():
    return load_rulebook(RULES_DIR, TEMPLATES_DIR)


@pytest.fixture(scope="module")
def env():
    return build_environment(TEMPLATES_DIR)


def _set(ns: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    target: Any = ns
    for part in parents:
        target = target.get(part) if isinstance(target, dict) else None
    if isinstance(target, dict) and leaf in target:
        target[leaf] = value


def _context(rule, variant: str = "sample", **changes: Any) -> dict[str, Any]:
    ns = copy.deepcopy(sample_namespaces(rule.trigger.subject, rule.trigger.event))
    ns["rule"] = {"id": rule.id, "name": rule.name, "category": rule.category.value}
    if rule.category.value == "marketing":  # the pipeline gives marketing emails their unsubscribe link
        ns["unsubscribe_url"] = "https://bank.example/u/token"
    if any(c.value in ("call", "visit") for c in rule.channels):  # a task's manager, as batch.task_context gives it
        ns.update({k: v for k, v in sample_context(rule).items() if k in ("manager", "task", "suitability")})
        if variant == "nulls":  # no manager: the branch queue
            ns["manager"] = {"id": None, "name": None, "branch": None, "queue": True}
    if variant == "unknown_gender":
        _set(ns, "customer.gender", None)
    elif variant == "nulls":
        for dotted in NULLABLE:
            _set(ns, dotted, None)
    for dotted, value in changes.items():
        _set(ns, dotted.replace("__", "."), value)
    return ns


def _render(env, config, rule, channel: str, context: dict[str, Any]):
    template_set = load_template_set(env, rule.template)
    return render_message(template_set, channel, context, signature=config["sms_signature"],
                          opt_out=config["sms_opt_out"] if rule.is_marketing else None)


def _all_text(message) -> str:
    return "\n".join(part for part in (message.subject, message.body, message.html) if part)


def _cases():
    book = load_rulebook(RULES_DIR, TEMPLATES_DIR)
    for rule in sorted(book.rules.values(), key=lambda r: r.id):
        for channel in rule.channels:
            for variant in VARIANTS:
                yield pytest.param(rule.id, channel.value, variant,
                                   id=f"{rule.id}-{channel.value}-{variant}")


def test_starter_rules_load_without_problems(rulebook):
    assert [str(p) for p in rulebook.problems] == []
    assert set(rulebook.rules) == set(STARTER_RULES)


def test_starter_rules_have_their_category(rulebook):
    assert {r.id: r.category.value for r in rulebook.rules.values()} == STARTER_RULES


def test_starter_rules_each_have_a_template_for_every_listed_channel(rulebook, env):
    for rule in rulebook.rules.values():
        template_set = load_template_set(env, rule.template)
        assert set(c.value for c in rule.channels) <= set(template_set.channels), rule.id


@pytest.mark.parametrize(("rule_id", "channel", "variant"), list(_cases()))
def test_starter_templates_render_every_listed_channel(rulebook, env, config, rule_id, channel,
                                                       variant):
    rule = rulebook.get(rule_id)
    message = _render(env, config, rule, channel, _context(rule, variant))
    text = _all_text(message)
    assert message.body.strip()
    assert "None" not in text
    assert "{{" not in text and "{%" not in text
    if channel == "email":
        assert message.subject and message.html
        # no external resources; the unsubscribe link is the only link
        assert "http" not in message.html.replace("https://bank.example/u/token", "") and "<img" not in message.html
    elif channel in ("call", "visit"):  # the manager's talking points: no signature, no opt-out line
        assert "【" not in message.body and "退订" not in message.body
        assert ("队列" in message.body) == (variant == "nulls")
    else:
        assert message.sms.segments <= 2, (message.sms, message.body)


def test_starter_sms_fit_in_at_most_two_parts(rulebook, env, config):
    for rule in rulebook.rules.values():
        if "sms" in {c.value for c in rule.channels}:
            message = _render(env, config, rule, "sms", _context(rule))
            assert message.sms.encoding == "UCS-2"
            assert message.sms.segments <= 2, (rule.id, message.sms, message.body)


def test_td_maturity_sms_fits_in_one_part(rulebook, env, config):
    rule = rulebook.get("td-maturity-reminder")
    for variant in VARIANTS:
        message = _render(env, config, rule, "sms", _context(rule, variant))
        assert message.sms.segments == 1, (variant, message.sms, message.body)


def test_td_maturity_sms_shows_masked_account_and_cn_maturity_date(rulebook, env, config):
    rule = rulebook.get("td-maturity-reminder")
    message = _render(env, config, rule, "sms", _context(rule))
    assert "尾号5678" in message.body
    assert "6222020012345678" not in message.body
    assert "2026年3月17日" in message.body
    assert "¥200,000.00" in message.body


def test_td_maturity_email_names_product_or_falls_back(rulebook, env, config):
    rule = rulebook.get("td-maturity-reminder")
    assert "1年期定期存款" in _render(env, config, rule, "email", _context(rule)).body
    fallback = _render(env, config, rule, "email", _context(rule, deposit__product=None)).body
    assert "产品：定期存款" in fallback


def test_starter_marketing_sms_ends_with_opt_out(rulebook, env, config):
    marketing = [r for r in rulebook.rules.values() if r.is_marketing and "sms" in r.channels]
    assert marketing
    for rule in marketing:
        body = _render(env, config, rule, "sms", _context(rule)).body
        assert body.startswith(config["sms_signature"])
        assert body.endswith(config["sms_opt_out"]), rule.id


def test_starter_service_sms_has_no_opt_out(rulebook, env, config):
    service = [r for r in rulebook.rules.values() if not r.is_marketing and "sms" in r.channels]
    assert service
    for rule in service:
        body = _render(env, config, rule, "sms", _context(rule)).body
        assert body.startswith(config["sms_signature"])
        assert "退订" not in body, rule.id


def test_starter_templates_do_not_write_signature_or_opt_out(rulebook):
    for rule in rulebook.rules.values():
        part = TEMPLATES_DIR / rule.template / "sms.txt.j2"
        if not part.is_file():  # a task-only rule (td-maturity-visit)
            continue
        sms = part.read_text(encoding="utf-8")
        assert "【" not in sms and "退订" not in sms, rule.id


def test_starter_marketing_emails_end_with_the_unsubscribe_link(rulebook, env, config):
    for rule in rulebook.rules.values():
        if rule.is_marketing and "email" in rule.channels:
            message = _render(env, config, rule, "email", _context(rule))
            assert message.body.rstrip().endswith("请点击退订（Unsubscribe）：https://bank.example/u/token"), rule.id
            assert 'href="https://bank.example/u/token"' in message.html, rule.id


def test_birthday_sms_uses_full_name_when_gender_unknown(rulebook, env, config):
    rule = rulebook.get("birthday-greeting")
    assert "张先生" in _render(env, config, rule, "sms", _context(rule)).body
    assert "张伟，" in _render(env, config, rule, "sms", _context(rule, "unknown_gender")).body


@pytest.mark.parametrize(("festival", "month", "day", "wish"), [
    ("春节", 2, 17, "新春快乐"), ("中秋", 9, 25, "中秋快乐"), ("端午", 6, 19, "端午安康"),
    (None, 10, 1, "国庆快乐"), ("中秋", 10, 1, "国庆中秋双节"),  # 2031-10-01 is both
])
def test_holiday_sms_greets_for_the_festival(rulebook, env, config, festival, month, day, wish):
    rule = rulebook.get("holiday-greeting")
    message = _render(env, config, rule, "sms", _context(rule, calendar__festival=festival, calendar__month=month,
                                                        calendar__day=day))
    assert wish in message.body
    assert message.sms.segments == 1


def test_holiday_rule_reads_festivals_not_the_official_holiday_block(rulebook):
    rule = rulebook.get("holiday-greeting")
    fields = referenced_fields(rule.conditions)
    assert "calendar.festival" in fields and "calendar.holiday" not in fields


def test_lunar_birthday_rule_greets_lunar_customers_only_and_solar_rule_the_others(rulebook):
    lunar = rulebook.get("lunar-birthday-greeting")
    solar = rulebook.get("birthday-greeting")
    assert Predicate("customer.birthday_calendar", "eq", "lunar") in lunar.conditions.items
    assert Predicate("customer.birthday_calendar", "eq", "solar") in solar.conditions.items


def test_lunar_birthday_sms_names_the_lunar_date(rulebook, env, config):
    rule = rulebook.get("lunar-birthday-greeting")
    message = _render(env, config, rule, "sms", _context(rule, calendar__lunar_date="冬月初一"))
    assert "农历冬月初一" in message.body and "生日快乐" in message.body
    assert message.sms.segments == 1


def test_td_maturity_says_when_the_money_is_paid_out_when_a_holiday_moves_it(rulebook, env, config):
    rule = rulebook.get("td-maturity-reminder")
    context = _context(rule, deposit__maturity_date=dt.date(2026, 10, 3), deposit__payout_date=dt.date(2026, 10, 8))
    sms = _render(env, config, rule, "sms", context)
    assert "2026年10月3日到期（遇节假日，本息10月8日到账）" in sms.body
    assert sms.sms.segments <= 2, (sms.sms, sms.body)
    email = _render(env, config, rule, "email", context)
    assert "到账日：2026年10月8日" in email.body and "2026年10月8日" in email.html
    same = _render(env, config, rule, "sms", _context(rule, deposit__payout_date=dt.date(2026, 3, 17)))
    assert "到账" not in same.body


@pytest.mark.parametrize(("product_type", "product_code"), [
    ("time_deposit", None), (None, "TD1Y"), ("wealth", None), ("fund", "FUND-BAL01"),
    ("unknown_type", None),
])
def test_rate_change_renders_with_either_product_field_missing(rulebook, env, config, product_type,
                                                               product_code):
    rule = rulebook.get("rate-change-notice")
    context = _context(rule, event__product_type=product_type, event__product_code=product_code)
    for channel in ("sms", "email"):
        message = _render(env, config, rule, channel, context)
        assert "None" not in _all_text(message)
        assert "1.65%" in message.body and "1.45%" in message.body
        if channel == "sms":
            assert message.sms.segments <= 2


@pytest.mark.parametrize(("delta_sign", "word"), [(-1, "下调至"), (1, "上调至")])
def test_rate_change_sms_says_which_way_the_rate_moved(rulebook, env, config, delta_sign, word):
    rule = rulebook.get("rate-change-notice")
    old, new = (Decimal("1.65"), Decimal("1.45")) if delta_sign < 0 else (Decimal("1.45"), Decimal("1.65"))
    context = _context(rule, event__old_rate=old, event__new_rate=new, event__rate_delta=new - old)
    assert word in _render(env, config, rule, "sms", context).body


@pytest.mark.parametrize(("product_type", "disclaimer"), [
    ("wealth", "理财非存款，产品有风险，投资须谨慎。"),
    ("fund", "产品有风险，投资须谨慎。"),
])
def test_product_launch_messages_carry_risk_disclaimer(rulebook, env, config, product_type,
                                                       disclaimer):
    rule = rulebook.get("product-launch")
    context = _context(rule, event__product__type=product_type)
    for channel in ("sms", "email"):
        message = _render(env, config, rule, channel, context)
        assert disclaimer in message.body, channel
        assert "R2" in message.body and "稳享90天理财" in message.body


def test_product_launch_email_subject_is_marked_as_advertising(rulebook, env, config):
    rule = rulebook.get("product-launch")
    assert _render(env, config, rule, "email", _context(rule)).subject.startswith("【广告】")


def test_large_transaction_sms_shows_masked_account_and_amount(rulebook, env, config):
    rule = rulebook.get("large-transaction-followup")
    message = _render(env, config, rule, "sms", _context(rule))
    assert "尾号5678" in message.body and "¥500,000.00" in message.body
    assert "2026年3月10日" in message.body
    big = _render(env, config, rule, "sms", _context(rule, event__amount=Decimal("12345678.90")))
    assert big.sms.segments <= 2



# --------------------------------------------------------------------------- large transactions (issue #12)

def test_large_transaction_sms_promise_no_call(rulebook, env, config):
    """The followup SMS (tiers below 白金: no task is planned) thanks; the call rule's SMS (sent exactly
    when no call could be planned) invites the customer to get in touch. Neither promises a call."""
    followup = rulebook.get("large-transaction-followup")
    call = rulebook.get("large-transaction-call")
    assert followup.template != call.template  # the call rule has its own folder
    for variant in VARIANTS:
        thanks = _render(env, config, followup, "sms", _context(followup, variant)).body
        assert "感谢您对我行的信任" in thanks and "联系" not in thanks and "退订" not in thanks
        fallback = _render(env, config, call, "sms", _context(call, variant))
        assert "将与您联系" not in fallback.body and "欢迎联系" in fallback.body
        assert fallback.body.endswith(config["sms_opt_out"])  # a marketing SMS: the opt-out line
        big = _render(env, config, call, "sms", _context(call, variant, event__amount=Decimal("12345678.90")))
        assert big.sms.segments <= 2, (big.sms, big.body)
    assert "欢迎联系您的客户经理" in _render(env, config, call, "sms", _context(call)).body
    assert "欢迎联系我行客户经理" in _render(env, config, call, "sms", _context(call, "nulls")).body


def test_large_transaction_call_talking_points_show_customer_event_and_product_suitability(rulebook, env, config):
    rule = rulebook.get("large-transaction-call")
    points = _render(env, config, rule, "call", _context(rule)).body
    assert "电联 张伟（金客户，风险承受 C3，AUM ¥560,000.00" in points and "上海分行浦东支行" in points
    assert "2026年3月10日 账户 尾号5678 入账 ¥500,000.00" in points
    assert "产品：" not in points  # no product in this rule's context: no product line, no verdict
    unassessed = _render(env, config, rule, "call", _context(rule, "nulls")).body
    assert "客户尚未做风险评估" in unassessed and "None" not in unassessed

    # the same template for a rule about a product: the product, its risk level, the verdict
    context = _context(rule)
    context["product"] = {"product_code": "WM-R2-01", "name": "安心稳健理财180天", "type": "wealth",
                          "risk_level": "R2", "risk_rank": 2}
    context["suitability"] = {"customer_risk_rank": 3, "product_risk_rank": 2, "suitable": True}
    points = _render(env, config, rule, "call", context).body
    assert "产品：安心稳健理财180天（风险等级 R2）" in points and "可以推荐" in points
    context["suitability"] = {"customer_risk_rank": 3, "product_risk_rank": 4, "suitable": False}
    assert "不得推荐" in _render(env, config, rule, "call", context).body


def test_td_maturity_visit_talking_points_name_the_deposit_product_and_risk(rulebook, env, config):
    rule = rulebook.get("td-maturity-visit")
    points = _render(env, config, rule, "visit", _context(rule)).body
    assert "面谈 张伟" in points and "（1年期定期存款，风险等级 R1）" in points and "¥200,000.00" in points


def _starter_services(settings, engine, *customers_rows, deposits=()):
    from campaign_engine.bootstrap import open_services
    from campaign_engine.store.models import Manager
    from campaign_engine.store.upsert import upsert_rows
    from factories import NOW, PRODUCTS, publish_rules
    from sqlalchemy import insert

    with engine.begin() as conn:
        upsert_rows(conn, "products", [dict(p) for p in PRODUCTS], now=NOW, source="test")
        upsert_rows(conn, "customers", list(customers_rows), now=NOW, source="test")
        if deposits:
            upsert_rows(conn, "deposits", list(deposits), now=NOW, source="test")
        conn.execute(insert(Manager).values(manager_id="M1", name="陈静", branch="北京分行", mobile="13900000000",
                                            email="m1@bank.example", daily_call_capacity=25, daily_visit_capacity=4,
                                            active=True, updated_at=NOW, source="test"))
    assert all(d["status"] == "live" for d in publish_rules(settings))
    return open_services(settings)


def _large_move(customer_id: str, event_id: str) -> dict[str, Any]:
    return {"event_id": event_id, "customer_id": customer_id, "account_no": "6222020012345678", "amount": 800000,
            "direction": "in", "occurred_at": "2026-03-10T09:30:00+08:00"}


def _rows(engine, model) -> list[dict[str, Any]]:
    from sqlalchemy import select

    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(model).order_by(model.id)).mappings()]


SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def test_starter_call_needs_phone_consent_and_falls_to_a_marketing_sms(settings, engine):
    """large-transaction-call is marketing: a consenting diamond customer gets the call; a platinum one
    without phone consent the fallback SMS (opt-out line), one without SMS consent either nothing."""
    from campaign_engine.store.models import Message, Task
    from campaign_engine.vocabulary import EventType
    from factories import customer, fire_event

    services = _starter_services(
        settings, engine,
        customer("C1", tier="diamond", manager_id="M1", mobile="13800000001", phone_consent=True),
        customer("C2", tier="platinum", manager_id="M1", mobile="13800000002"),  # no phone consent recorded
        customer("C3", tier="platinum", manager_id="M1", mobile="13800000003", sms_consent=False),
        customer("C4", tier="gold", manager_id="M1", mobile="13800000004", sms_consent=False))
    try:
        now = dt.datetime(2026, 3, 10, 9, 40, tzinfo=SHANGHAI)
        reports = {cid: fire_event(services, EventType.LARGE_TRANSACTION, _large_move(cid, f"lt-{cid}"), now=now)
                   for cid in ("C1", "C2", "C3", "C4")}
    finally:
        services.close()
    assert [(t["customer_id"], t["type"], t["category"]) for t in _rows(engine, Task)] == [("C1", "call", "marketing")]
    sent = {m["customer_id"]: m for m in _rows(engine, Message)}
    assert sorted(sent) == ["C2", "C4"]
    assert (sent["C2"]["rule_id"], sent["C2"]["category"]) == ("large-transaction-call", "marketing")
    assert sent["C2"]["body"].endswith(settings.sms_opt_out) and "将与您联系" not in sent["C2"]["body"]
    assert (sent["C4"]["rule_id"], sent["C4"]["category"]) == ("large-transaction-followup", "service")
    [c3] = [r for r in reports["C3"]["rules"] if r["rule"] == "large-transaction-call"]
    assert c3["suppressed"] == {"no_consent": 1}


def test_refused_stops_the_starter_call_the_sms_follows_consent_and_service_sms_still_go(settings, engine):
    """After a manager's `refused`, the next large transfer plans no call: the SMS only if SMS marketing
    consent allows it, else suppressed no_consent; the customer's service SMS (maturity) still go."""
    from campaign_engine.pipeline.tasks import OutcomeRequest, Viewer, record_outcome
    from campaign_engine.store.models import Message, Task
    from campaign_engine.vocabulary import EventType, TaskOutcome
    from factories import customer, deposit, fire_event, run_day

    services = _starter_services(
        settings, engine,
        customer("C1", tier="diamond", manager_id="M1", mobile="13800000001", phone_consent=True),
        customer("C2", tier="diamond", manager_id="M1", mobile="13800000002", phone_consent=True,
                 sms_consent=False),
        deposits=[deposit("D1", "C1", maturity_date=dt.date(2026, 3, 20)),
                  deposit("D2", "C2", maturity_date=dt.date(2026, 3, 20))])
    try:
        first = dt.datetime(2026, 3, 10, 9, 40, tzinfo=SHANGHAI)
        for cid in ("C1", "C2"):
            fire_event(services, EventType.LARGE_TRANSACTION, _large_move(cid, f"lt-{cid}-1"), now=first)
        calls = {t["customer_id"]: t for t in _rows(engine, Task)}
        assert sorted(calls) == ["C1", "C2"] and _rows(engine, Message) == []
        for cid in ("C1", "C2"):
            record_outcome(services, calls[cid]["id"], OutcomeRequest(TaskOutcome.REFUSED, note="不要再打电话"),
                           Viewer("key:m1#1", "manager", "M1"), now=dt.datetime(2026, 3, 11, 10, 30, tzinfo=SHANGHAI))
        # a month later (no cap in the way): another large transfer for each
        later = dt.datetime(2026, 4, 14, 9, 40, tzinfo=SHANGHAI)
        again = {cid: fire_event(services, EventType.LARGE_TRANSACTION, _large_move(cid, f"lt-{cid}-2"), now=later)
                 for cid in ("C1", "C2")}
        service = run_day(services, today=dt.date(2026, 3, 15), now=dt.datetime(2026, 3, 15, 9, 0, tzinfo=SHANGHAI),
                          rule_ids=["td-maturity-reminder"])
    finally:
        services.close()
    assert len(_rows(engine, Task)) == 2  # no new call task for either
    call = lambda report: next(r for r in report["rules"] if r["rule"] == "large-transaction-call")  # noqa: E731
    assert call(again["C1"]).get("tasks", 0) == 0 and call(again["C2"]).get("tasks", 0) == 0
    assert call(again["C1"])["queued"] + call(again["C1"])["scheduled"] == 1  # the SMS: C1 takes marketing SMS
    assert call(again["C2"])["suppressed"] == {"no_consent": 1}  # no phone, no SMS consent: nothing
    texts = [(m["rule_id"], m["customer_id"], m["channel"]) for m in _rows(engine, Message)]
    assert ("large-transaction-call", "C1", "sms") in texts
    assert not any(rule == "large-transaction-call" and cid == "C2" for rule, cid, _ in texts)
    # the service reminder of each customer's maturing deposit goes, whatever the phone consent says
    [reminder] = service["rules"]
    assert reminder["queued"] + reminder["scheduled"] == 2 and reminder["suppressed"] == {}
    assert {cid for rule, cid, _ in texts if rule == "td-maturity-reminder"} == {"C1", "C2"}
