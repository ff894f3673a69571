"""Retrying failed messages once their cause is fixed (an operator's `retry`, CLI or API).

A message is failed when its template could not render it (no body) or its delivery failed for
good (a body). A retry renders it again as its run would now: the rule as this process's
rulebook has it (its live published version and that version's templates), the run's date and event (the occurrence
the message belongs to), the subject's current row (the customer, or the deposit); the contact
policy is decided again at `now` (batch.decide_and_render, the run's own code: a customer who
has withdrawn consent since is suppressed, quiet hours schedule it, the caps count). The
outcome is written onto the same row, under the same idempotency key, so a retry can never
make a second message for one occurrence; the row keeps what it was in its `history`. The
delivery worker then sends it like any other queued message. The run's own counts stand; its
report's `delivery` (the messages' current states) shows the change.

Conditions are not evaluated again: the message's occurrence matched when its run ran, and a
date-driven condition (a birthday today) would not hold on a later day.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Iterator, Mapping, Sequence

from .. import metrics
from ..errors import Problem, TemplateError, ValidationFailed
from ..rulebook.model import Predicate, Rule
from ..selection.plan import CandidatePlan
from ..vocabulary import MessageStatus, SubjectType
from .batch import (Match, RuleRun, consents, contact_state, decide_and_render, dedupe_key, fact_sets,
                    message_row, prepare_rule)
from .ports import CandidateRow, StoredMessage
from .publishing import not_live_hint
from .services import Services
from .shards import AcceptedRun, load_run

log = logging.getLogger(__name__)

#: The statuses a retry takes up (the request's `status`).
RETRYABLE = (MessageStatus.FAILED.value,)


class RetrySkip(StrEnum):
    """Why a selected message was not queued again (a suppression reason when the policy refused it)."""

    NOT_FOUND = "not_found"  # no message has this id
    NOT_FAILED = "not_failed"  # it is not failed (any more): nothing to retry
    RULE_NOT_LIVE = "rule_not_live"  # its rule is not published (live), is disabled, or cannot run
    TEMPLATE_FAILED = "template_failed"  # rendered again, failed again: stays failed with the new error
    SUBJECT_GONE = "subject_gone"  # its customer or deposit is gone, or no longer makes that occurrence


#: Skips after which the selected message is still failed (or was never there): the CLI exits 1.
UNRESOLVED = frozenset({RetrySkip.NOT_FOUND, RetrySkip.RULE_NOT_LIVE, RetrySkip.TEMPLATE_FAILED,
                        RetrySkip.SUBJECT_GONE})


@dataclass(frozen=True)
class RetryRequest:
    """Which messages to retry: these ids, or the failed messages of a run and/or a rule."""

    message_ids: tuple[int, ...] = ()
    run_id: int | None = None
    rule_id: str | None = None
    status: str = MessageStatus.FAILED.value
    dry_run: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.message_ids and (self.run_id is not None or self.rule_id is not None):
            problems.append(Problem("give message ids, or a run and/or a rule, not both", field="message_ids"))
        elif not self.message_ids and self.run_id is None and self.rule_id is None:
            problems.append(Problem("say which messages to retry: message ids, a run or a rule", field="run"))
        if self.status not in RETRYABLE:
            problems.append(Problem(f"only {', '.join(RETRYABLE)} messages can be retried, not {self.status!r}",
                                    field="status"))
        if problems:
            raise ValidationFailed(problems, what="retry request")


@dataclass(frozen=True)
class RetriedMessage:
    """One selected message after the retry (in a dry run: as it would be)."""

    id: int
    status: str | None  # None: no such message
    error: str | None = None
    skipped_because: str | None = None  # a RetrySkip, or the SuppressionReason that refused it

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "status": self.status}
        if self.error is not None:
            out["error"] = self.error
        if self.skipped_because is not None:
            out["skipped_because"] = self.skipped_because
        return out


@dataclass
class RetryReport:
    request: RetryRequest
    messages: list[RetriedMessage] = field(default_factory=list)

    @property
    def retried(self) -> int:
        return sum(1 for m in self.messages if m.skipped_because is None)

    @property
    def skipped(self) -> int:
        return len(self.messages) - self.retried

    def skips(self) -> dict[str, int]:
        return dict(Counter(m.skipped_because for m in self.messages if m.skipped_because is not None))

    @property
    def unresolved(self) -> bool:
        """Whether a selected message is still failed (or unknown) after the retry."""
        return any(m.skipped_because in UNRESOLVED for m in self.messages)

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": self.request.dry_run, "retried": self.retried, "skipped": self.skipped,
                "messages": [m.as_dict() for m in self.messages]}

    def audit_target(self) -> str:
        r = self.request
        return f"run:{r.run_id}" if r.run_id is not None else f"rule:{r.rule_id}" if r.rule_id else "messages"

    def audit_details(self) -> dict[str, Any]:
        """What the audit log keeps of a retry (the first 100 ids named; the history has every one)."""
        r = self.request
        details: dict[str, Any] = {"retried": self.retried, "skipped": self.skips()}
        if r.message_ids:
            details["message_ids"] = sorted(set(r.message_ids))[:100]
        if r.run_id is not None:
            details["run"] = r.run_id
        if r.rule_id is not None:
            details["rule"] = r.rule_id
        return details


def retry_messages(services: Services, request: RetryRequest, *, now: dt.datetime, actor: str) -> RetryReport:
    """Render the selected failed messages again and queue them, batch by batch (a dry run writes
    nothing); every selected message is in the report with where it stands."""
    report = RetryReport(request)
    rules = _Preparations(services)
    for batch in _selected(services, request, report):
        _retry_batch(services, rules, batch, report, now=now, actor=actor)
    report.messages.sort(key=lambda m: m.id)
    if not request.dry_run:
        metrics.RETRIES.inc(report.retried)
        log.info("retry by %s (%s): %s retried, %s skipped %s", actor, report.audit_target(), report.retried,
                 report.skipped, report.skips() or "")
    return report


def _selected(services: Services, request: RetryRequest, report: RetryReport) -> Iterator[Sequence[StoredMessage]]:
    """The selected messages in `request.status`, in batches of batch_size in id order; named ids
    that are unknown or not in that status are reported skipped here."""
    size = services.settings.batch_size
    if request.message_ids:
        ids = sorted(set(request.message_ids))
        for start in range(0, len(ids), size):
            chunk = ids[start:start + size]
            found = services.store.messages_by_id(chunk)
            known = {m.id for m in found}
            report.messages += [RetriedMessage(i, None, f"message {i} not found", RetrySkip.NOT_FOUND)
                                for i in chunk if i not in known]
            report.messages += [RetriedMessage(m.id, m.status, f"message is {m.status}, not {request.status}",
                                               RetrySkip.NOT_FAILED) for m in found if m.status != request.status]
            yield [m for m in found if m.status == request.status]
        return
    after: int | None = None
    while True:  # keyset pages: a retried row is no longer failed, one left failed is behind `after`
        page = services.store.messages_to_retry(status=request.status, run_id=request.run_id,
                                                rule_id=request.rule_id, after_id=after, limit=size)
        if not page:
            return
        yield page
        after = page[-1].id


@dataclass(frozen=True)
class _Prepared:
    """A (run, rule) ready to render, or why its messages cannot be."""

    prep: RuleRun | None
    skip: RetrySkip | None = None
    error: str | None = None


class _Preparations:
    """Each run loaded and each (run, rule) prepared once per retry (templates compiled once)."""

    def __init__(self, services: Services):
        self.services = services
        self._runs: dict[int, AcceptedRun] = {}
        self._prepared: dict[tuple[int, str], _Prepared] = {}

    def get(self, run_id: int, rule_id: str) -> _Prepared:
        key = (run_id, rule_id)
        if key not in self._prepared:
            self._prepared[key] = self._prepare(run_id, rule_id)
        return self._prepared[key]

    def _prepare(self, run_id: int, rule_id: str) -> _Prepared:
        rulebook = self.services.rulebook
        rule = rulebook.get(rule_id)
        if rule is None:
            why = ("; ".join(str(p) for p in rulebook.problems if p.rule == rule_id)
                   or not_live_hint(self.services.store, [rule_id]))
            return _Prepared(None, RetrySkip.RULE_NOT_LIVE, f"rule {rule_id} is not live: {why}")
        if not rule.enabled:
            stopped = rulebook.stopped.get(rule_id)
            return _Prepared(None, RetrySkip.RULE_NOT_LIVE, f"rule {rule_id} is disabled" + (f" ({stopped})" if stopped else ""))
        if run_id not in self._runs:
            self._runs[run_id] = load_run(self.services, run_id)
        run = self._runs[run_id]
        try:  # the run's date and event: the occurrence its messages belong to
            return _Prepared(prepare_rule(self.services, rule, run.today, run.event))
        except TemplateError as exc:  # the template folder itself cannot be compiled
            return _Prepared(None, RetrySkip.TEMPLATE_FAILED, str(exc))
        except ValidationFailed as exc:  # e.g. the product it promotes is gone
            return _Prepared(None, RetrySkip.RULE_NOT_LIVE, "; ".join(str(p) for p in exc.problems) or str(exc))


def _retry_batch(services: Services, rules: _Preparations, batch: Sequence[StoredMessage], report: RetryReport,
                 *, now: dt.datetime, actor: str) -> None:
    groups: dict[tuple[int, str], list[StoredMessage]] = {}
    for message in batch:
        groups.setdefault((message.run_id, message.rule_id), []).append(message)
    results: dict[int, RetriedMessage] = {}
    writes: list[dict[str, Any]] = []
    for (run_id, rule_id), messages in groups.items():
        prepared = rules.get(run_id, rule_id)
        if prepared.prep is None:
            assert prepared.skip is not None
            for m in messages:
                results[m.id] = RetriedMessage(m.id, m.status, prepared.error, prepared.skip)
                if prepared.skip is RetrySkip.TEMPLATE_FAILED:  # stays failed, with the new error
                    writes.append(_write(m, MessageStatus.FAILED.value, actor, now, error=prepared.error))
            continue
        _render_group(services, prepared.prep, messages, results, writes, now=now, actor=actor)
    if writes and not report.request.dry_run:
        written = services.store.apply_retries(writes)
        changed = [w["id"] for w in writes if w["id"] not in written]
        if changed:  # retried by someone else meanwhile, or no longer failed
            for m in services.store.messages_by_id(changed):
                results[m.id] = RetriedMessage(m.id, m.status, "changed by another retry meanwhile",
                                               RetrySkip.NOT_FAILED)
    report.messages += results.values()


def _subject_plan(rule: Rule, subject_ids: Sequence[str]) -> CandidatePlan:
    """The current rows of these subjects, by primary key: no date window, no condition."""
    key = "deposit.deposit_id" if rule.trigger.subject is SubjectType.DEPOSIT else "customer.customer_id"
    return CandidatePlan(subject=rule.trigger.subject, where=(Predicate(key, "in", tuple(subject_ids)),))


def _subject_id(candidate: CandidateRow) -> str:
    return str(candidate.deposit["deposit_id"] if candidate.deposit is not None else candidate.customer["customer_id"])


def _render_group(services: Services, prep: RuleRun, messages: Sequence[StoredMessage],
                  results: dict[int, RetriedMessage], writes: list[dict[str, Any]], *,
                  now: dt.datetime, actor: str) -> None:
    """One (run, rule)'s messages: subjects read again, the policy decided now, rendered again."""
    rule = prep.rule
    subject = rule.trigger.subject.value
    current: dict[str, CandidateRow] = {}
    wanted = sorted({m.subject_id for m in messages if m.subject_type == subject})
    if wanted:
        for rows in services.store.select_candidates(_subject_plan(rule, wanted), services.settings.batch_size):
            current.update((_subject_id(c), c) for c in rows)
    live: list[tuple[StoredMessage, CandidateRow]] = []
    for m in messages:
        if m.subject_type != subject:
            results[m.id] = RetriedMessage(m.id, m.status, f"rule {rule.id} now selects {subject}s, not "
                                                           f"{m.subject_type}s", RetrySkip.SUBJECT_GONE)
        elif m.subject_id not in current:
            results[m.id] = RetriedMessage(m.id, m.status, f"{m.subject_type} {m.subject_id} is gone",
                                           RetrySkip.SUBJECT_GONE)
        else:
            live.append((m, current[m.subject_id]))
    if not live:
        return
    holds: Mapping[str, list[str]] = {}
    if prep.needs_holds:
        holds = services.store.load_holds(sorted({c.customer["customer_id"] for _, c in live}))
    facts = fact_sets([c for _, c in live], holds, prep.today, prep.derive)
    matches: list[tuple[StoredMessage, Match]] = []
    for (m, candidate), fs in zip(live, facts):
        key = dedupe_key(prep, fs)
        if key != m.dedupe_key:  # e.g. the deposit was renewed to a new maturity date
            results[m.id] = RetriedMessage(m.id, m.status, f"its occurrence is gone: {m.subject_type} "
                                                           f"{m.subject_id} now makes {key}", RetrySkip.SUBJECT_GONE)
            continue
        matches.append((m, Match(fs, fs.namespaces(prep.shared), m.dedupe_key, consents(candidate))))
    state = contact_state(services, prep, [match for _, match in matches], now)
    for m, match in matches:
        decide_and_render(services, prep, match, state, now)
        assert match.decision is not None
        if match.decision.suppressed is not None:
            reason = match.decision.suppressed.value
            results[m.id] = RetriedMessage(m.id, MessageStatus.SUPPRESSED.value, skipped_because=reason)
            writes.append(_write(m, MessageStatus.SUPPRESSED.value, actor, now, suppressed_reason=reason))
            continue
        row = message_row(prep, match, m.run_id, now)
        content = {k: v for k, v in row.items() if k not in _IDENTITY}
        if row["status"] == MessageStatus.FAILED.value:
            results[m.id] = RetriedMessage(m.id, row["status"], row["error"], RetrySkip.TEMPLATE_FAILED)
        else:
            results[m.id] = RetriedMessage(m.id, row["status"])
        writes.append(_write(m, row["status"], actor, now, error=row["error"], content=content))


#: What a retry never changes: the row's identity and occurrence, and when it was first written.
_IDENTITY = frozenset({"dedupe_key", "run_id", "rule_id", "customer_id", "subject_type", "subject_id", "created_at"})


def _write(message: StoredMessage, outcome: str, actor: str, now: dt.datetime, *, error: str | None = None,
           suppressed_reason: str | None = None, content: dict[str, Any] | None = None) -> dict[str, Any]:
    """One outcome for RunStore.apply_retries: `content` (an outbox row's fields as batch.message_row
    writes them) when rendered again, `suppressed_reason` when refused, else only the new error."""
    entry = {"at": now.astimezone(dt.timezone.utc).isoformat(), "by": actor, "action": "retry",
             "previous_status": message.status, "previous_error": message.error,
             "previous_attempts": message.attempts, "previous_channel": message.channel,
             "outcome": outcome, "error": error}
    if suppressed_reason is not None:
        entry["suppressed_reason"] = suppressed_reason
    write: dict[str, Any] = {"id": message.id, "retries": message.retries, "history": [*message.history, entry]}
    if content is not None:
        write["content"] = content
    elif suppressed_reason is not None:
        write["suppressed_reason"] = suppressed_reason
    else:
        write["error"] = error
    return write
