"""What a draft does to a rule's audience: the live version and the draft, each dry-run through the
batch path a run takes (preview's: prepare_rule, process_batch with run_id None), compared subject
by subject. Writes nothing.

Each version selects its own candidates (its SQL plan may differ) and sees the same date, clock and
event. A subject's outcome under a version is one of OUTCOMES; its *audience* is the subjects the
policy lets it contact (would be sent, or held out to measure the effect). `added`/`removed` count
the subjects entering/leaving the audience; `by_reason` the moves between outcomes; `explain` says,
for a few sampled subjects, which conditions changed the verdict (read again, one subject at a time).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import replace
from typing import Any, Callable, Iterator, Mapping, Sequence, cast

from ..errors import Problem, ValidationFailed
from ..evaluation.engine import RuleEngine
from ..evaluation.explain import Outcome, explain
from ..events import Event
from ..rulebook.loader import Rulebook
from ..rulebook.model import Predicate, Rule
from ..selection.plan import CandidatePlan
from ..vocabulary import SubjectType, SuppressionReason
from .batch import Match, RuleRun, fact_sets, prepare_rule, process_batch
from .ports import CandidateRow
from .report import RuleStats
from .services import Services

# A subject's outcome under one version, as process_batch counts it in a dry run.
NOT_MATCHED = "not_matched"  # not a candidate of its SQL plan, or the conditions are false
SENT = "sent"  # would be queued now or scheduled for the channel's next sending window
HELD_OUT = "held_out"  # the policy lets it contact them; the rule's holdout or the control group keeps them
FAILED = "failed"  # would be written failed: its template did not render
DUPLICATE = "duplicate"  # this occurrence is already in the outbox (an earlier run): nothing would be decided
SUPPRESSED = "suppressed:"  # + the SuppressionReason value: `suppressed:suitability`
# In an explanation only: the version does not run on the date (its `active` window, workdays_only),
# so it matched nobody (its counts' `skipped` says why).
SKIPPED = "skipped"
# In an explanation only: the version is stopped (`rules disable`, or `enabled: false` in its file)
# before or after the change, so it contacts nobody (its counts' `skipped` says why).
DISABLED = "disabled"
OUTCOMES: tuple[str, ...] = (NOT_MATCHED, SENT, HELD_OUT, FAILED, DUPLICATE,
                             *(SUPPRESSED + r.value for r in SuppressionReason))
AUDIENCE = frozenset({SENT, HELD_OUT})
_CODE = {name: i for i, name in enumerate(OUTCOMES)}  # outcome -> small int (what per-subject state holds)
_NOT_MATCHED, _DUPLICATE = _CODE[NOT_MATCHED], _CODE[DUPLICATE]
_IN_AUDIENCE = frozenset(_CODE[o] for o in AUDIENCE)


def audience_diff(services: Services, live: Rule | None, draft: Rule, draft_book: Rulebook, *, today: dt.date,
                  now: dt.datetime, event: Event | None = None, sample: int = 10,
                  explain_limit: int = 5, enable: bool = False) -> dict[str, Any]:
    """How many subjects the draft adds to and removes from the live version's audience on `today`
    (as a run started at `now` would decide), per outcome, with samples and, for a few of them, the
    conditions whose outcome changed.

    `live` is the live version (its templates in services.rulebook, its conditions in
    services.engine), None for a new rule: then every subject of the draft's audience is added.
    `draft` and its templates come from `draft_book`. An event rule compares both versions on the
    same `event`; a draft that changes the trigger (its subject, schedule <-> event, the event
    type) is refused: a diff compares like with like.

    A stopped version contacts nobody: a live version that is disabled (the emergency stop, or
    `enabled: false`) has an empty audience, so an `enable` draft adds everyone it would contact;
    a new version of a stopped rule stays stopped when approved (store.apply_draft), so both sides
    are empty. `note` then says so, and each side's counts say why in `skipped`.
    """
    _check_comparable(live, draft, event)
    draft_services = replace(services, rulebook=draft_book, engine=RuleEngine([draft]))
    live_off = _live_off(services, live)
    draft_off = _draft_off(services, live, draft, enable)

    # Per-subject state: the live version's outcome code of each subject it *matched* (the others
    # are absent: not matched), a str key and a small cached int, about 90-100 bytes a subject in
    # CPython (1 M matched ~ 0.1 GB); the draft's outcomes are compared as they stream and not
    # kept, and the samples are bounded. No facts or namespaces are held past their batch.
    live_codes: dict[str, int] = {}
    live_prep: RuleRun | None = None
    live_stats: RuleStats | None = None
    if live is not None and live_off is None:
        live_prep, live_stats = _dry_run(services, live, today, now, event, live_codes.__setitem__)
    elif live is not None:
        live_stats = RuleStats(live.id, skipped=live_off)

    added, removed = _Smallest(sample), _Smallest(sample)

    def compare(subject: str, before: int, after: int) -> None:
        if after in _IN_AUDIENCE and before not in _IN_AUDIENCE:
            added.add((subject, before, after))
        elif before in _IN_AUDIENCE and after not in _IN_AUDIENCE:
            removed.add((subject, before, after))

    def drafted(subject: str, code: int) -> None:
        compare(subject, live_codes.pop(subject, _NOT_MATCHED), code)

    draft_prep: RuleRun | None = None
    if draft_off is None:
        draft_prep, draft_stats = _dry_run(draft_services, draft, today, now, event, drafted)
    else:
        draft_stats = RuleStats(draft.id, skipped=draft_off)
    for subject, code in live_codes.items():  # matched by the live version only
        compare(subject, code, _NOT_MATCHED)
    live_codes.clear()

    sample_added, sample_removed = added.smallest(), removed.smallest()
    explained: dict[str, list[dict[str, Any]]] = {}
    subject_type = draft.trigger.subject
    for subject, before, after in sample_added[:explain_limit] + sample_removed[:explain_limit]:
        if live_off is not None or draft_off is not None:  # the stop, not a condition, decides
            explained[subject] = [{"policy": {"live": DISABLED if live_off is not None else _label(live_prep, before),
                                              "draft": DISABLED if draft_off is not None
                                              else _label(draft_prep, after)}}]
            continue
        live_outcome = (_conditions(services, live_prep, subject_type, subject)
                        if live_prep is not None else None)
        assert draft_prep is not None
        draft_outcome = _conditions(draft_services, draft_prep, subject_type, subject)
        explained[subject] = _explain_change(live_outcome, draft_outcome, _label(live_prep, before),
                                             _label(draft_prep, after))

    live_counts = live_stats.as_dict() if live_stats is not None else None
    draft_counts = draft_stats.as_dict()
    result: dict[str, Any] = {
        "rule": draft.id, "date": today.isoformat(),
        "live": live_counts, "draft": draft_counts,
        "added": added.count, "removed": removed.count,
        "by_reason": _by_reason(live_stats, draft_stats),
        "sample_added": [s for s, _, _ in sample_added],
        "sample_removed": [s for s, _, _ in sample_removed],
        "explain": dict(sorted(explained.items())),
    }
    note = _note(draft.id, live_off, draft_off, enable)
    if note is not None:
        result["note"] = note
    if event is not None:
        result["event"] = event.key
    return result


# --------------------------------------------------------------------------- stopped versions

def _stop(services: Services, rule_id: str) -> str | None:
    """Who stopped a live rule (`rules disable`), when (local time, with offset) and why; None
    when it is not stopped."""
    if rule_id not in services.rulebook.stopped:
        return None
    found = services.store.disabled_rules([rule_id]).get(rule_id)
    if found is None:  # enabled since this process read its rule set: what it read
        return services.rulebook.stopped[rule_id]
    at = found["changed_at"]
    if isinstance(at, dt.datetime):
        at = (at if at.tzinfo is not None else at.replace(tzinfo=dt.timezone.utc)).astimezone(services.settings.tz)
        when = at.isoformat(sep=" ", timespec="minutes")
    else:
        when = str(at)
    return f"disabled by {found['changed_by']} at {when}: {found['reason']}"


def _live_off(services: Services, live: Rule | None) -> str | None:
    """Why the live version contacts nobody (it is stopped), or None when it runs."""
    if live is None or live.enabled:
        return None
    return _stop(services, live.id) or "disabled: `enabled: false` in its file"


def _draft_off(services: Services, live: Rule | None, draft: Rule, enable: bool) -> str | None:
    """Why the draft, once approved, contacts nobody, or None when it runs: `enabled: false` in
    its file, or a new version of a stopped rule (it stays stopped until an enable is approved)."""
    if not draft.enabled:
        return "disabled: `enabled: false` in the draft's file"
    if enable or live is None:
        return None
    stop = _stop(services, live.id)
    return None if stop is None else f"stays {stop}"


def _note(rule_id: str, live_off: str | None, draft_off: str | None, enable: bool) -> str | None:
    """What the stop means for this diff (None: neither side is stopped)."""
    if live_off is not None and draft_off is None:
        if enable:
            return (f"{rule_id} is {live_off}; it contacts nobody now. Approving this enable switches it on: "
                    "everyone it would contact is added")
        return f"the live version of {rule_id} is {live_off} and contacts nobody; this version switches it on"
    if draft_off is not None and draft_off.startswith("stays "):
        return (f"{rule_id} is {draft_off[len('stays '):]}. This version stays stopped when approved, so it "
                f"contacts nobody before or after; `rules enable {rule_id}` (approved by someone else) switches "
                "it on, and that enable's diff shows whom it would contact")
    if draft_off is not None:
        return f"this version of {rule_id} has `enabled: false`: it contacts nobody once approved"
    return None


# --------------------------------------------------------------------------- like with like

def _check_comparable(live: Rule | None, draft: Rule, event: Event | None) -> None:
    problems = []
    if live is not None and live.id != draft.id:
        problems.append(Problem(f"the draft is rule {draft.id!r}, the live version is {live.id!r}: a diff "
                                "compares two versions of one rule", rule=draft.id, field="id"))
    if live is not None and (live.trigger.subject, live.trigger.event) != (draft.trigger.subject,
                                                                           draft.trigger.event):
        problems.append(Problem(
            f"the draft changes the trigger ({_trigger(live)} -> {_trigger(draft)}): a diff compares like with "
            "like (the same subjects on the same occurrence); preview the draft on its own instead",
            file=draft.file, line=draft.line_of(("trigger",)), rule=draft.id, field="trigger"))
    if problems:
        raise ValidationFailed(problems, what="draft diff")
    wanted = draft.trigger.event
    if wanted is not None and event is None:
        problems.append(Problem(f"an event rule ({wanted.value}) is diffed against an event payload",
                                rule=draft.id, field="event"))
    elif wanted is None and event is not None:
        problems.append(Problem("a scheduled rule is diffed on a date, without an event", rule=draft.id,
                                field="event"))
    elif event is not None and event.type is not wanted:
        problems.append(Problem(f"the rule handles {wanted}, not {event.type.value} events", rule=draft.id,
                                field="event"))
    if problems:
        raise ValidationFailed(problems, what="draft diff")


def _label(prep: RuleRun | None, code: int) -> str:
    return SKIPPED if prep is not None and prep.skipped else OUTCOMES[code]


def _trigger(rule: Rule) -> str:
    kind = f"event {rule.trigger.event.value}" if rule.trigger.event is not None else "schedule"
    return f"{kind}, subject {rule.trigger.subject.value}"


# --------------------------------------------------------------------------- one version's dry run

class _Verdicts:
    """The rules engine, keeping the verdicts of the batch it decided last: process_batch hands
    on_match the fresh matches only, and a match already in the outbox is a duplicate."""

    def __init__(self, engine: RuleEngine):
        self._engine = engine
        self.last: list[bool] = []

    def evaluate(self, rule_id: str, facts: Sequence[Mapping[str, Any]]) -> list[bool]:
        self.last = self._engine.evaluate(rule_id, facts)
        return self.last


def _candidate_subject(candidate: CandidateRow) -> str:
    return str(candidate.deposit["deposit_id"] if candidate.deposit is not None
               else candidate.customer["customer_id"])


def _match_subject(match: Match) -> str:
    facts = match.facts
    return str(facts.deposit["deposit_id"] if facts.deposit is not None else facts.customer["customer_id"])


def _match_outcome(match: Match) -> int:
    """As process_batch counts a dry run's fresh match."""
    decision = match.decision
    assert decision is not None
    if decision.suppressed is not None:
        return _CODE[SUPPRESSED + decision.suppressed.value]
    if match.held_out is not None:
        return _CODE[HELD_OUT]
    if match.message is None:
        return _CODE[FAILED]
    return _CODE[SENT]


def _dry_run(services: Services, rule: Rule, today: dt.date, now: dt.datetime, event: Event | None,
             outcome: Callable[[str, int], None]) -> tuple[RuleRun, RuleStats]:
    """One version over its candidates, as a dry run counts it; `outcome(subject, code)` for every
    subject it matched (not for the candidates it did not)."""
    prep = prepare_rule(services, rule, today, event)
    stats = RuleStats(rule.id)
    stats.skipped = prep.skipped
    verdicts = _Verdicts(services.engine)
    observed = replace(services, engine=cast(RuleEngine, verdicts))
    started = time.perf_counter()
    for batch in services.store.select_candidates(prep.plan, services.settings.batch_size):
        fresh: dict[str, int] = {}

        def keep(match: Match) -> None:
            fresh[_match_subject(match)] = _match_outcome(match)

        verdicts.last = []
        process_batch(observed, prep, batch, stats, run_id=None, now=now, on_match=keep)
        assert len(verdicts.last) == len(batch)
        for candidate, hit in zip(batch, verdicts.last):
            if hit:
                subject = _candidate_subject(candidate)
                outcome(subject, fresh.get(subject, _DUPLICATE))
    stats.seconds = time.perf_counter() - started
    return prep, stats


def _by_reason(live: RuleStats | None, draft: RuleStats) -> dict[str, dict[str, int]]:
    """Matched subjects per outcome under each version (not_matched is left out: each version
    counts it over its own candidates)."""
    def tally(stats: RuleStats | None) -> dict[str, int]:
        if stats is None:
            return {}
        out = {SENT: stats.queued + stats.scheduled, HELD_OUT: stats.held_out, FAILED: stats.failed,
               DUPLICATE: stats.duplicates}
        out.update({SUPPRESSED + reason: n for reason, n in stats.suppressed.items() if n})
        return out

    before, after = tally(live), tally(draft)
    return {k: {"live": before.get(k, 0), "draft": after.get(k, 0), "delta": after.get(k, 0) - before.get(k, 0)}
            for k in sorted({*before, *after})}


class _Smallest:
    """The `k` smallest (subject, live code, draft code) seen, and how many were seen: bounded memory."""

    def __init__(self, k: int):
        self.k = max(k, 0)
        self.count = 0
        self._items: list[tuple[str, int, int]] = []

    def add(self, item: tuple[str, int, int]) -> None:
        self.count += 1
        if self.k == 0:
            return
        self._items.append(item)
        if len(self._items) >= 2 * self.k + 64:
            self._items = sorted(self._items)[:self.k]

    def smallest(self) -> list[tuple[str, int, int]]:
        return sorted(self._items)[:self.k]


# --------------------------------------------------------------------------- explaining a subject

def _one_subject(subject_type: SubjectType, subject: str) -> CandidatePlan:
    if subject_type is SubjectType.DEPOSIT:
        return CandidatePlan(subject=subject_type, where=(Predicate("deposit.deposit_id", "eq", subject),))
    return CandidatePlan(subject=subject_type, customer_id=subject)


def _conditions(services: Services, prep: RuleRun, subject_type: SubjectType, subject: str) -> Outcome | None:
    """The outcome of each of a version's conditions for one subject, read again (None: it is gone)."""
    plan = _one_subject(subject_type, subject)
    rows = [c for batch in services.store.select_candidates(plan, 10) for c in batch
            if _candidate_subject(c) == subject]
    if not rows:
        return None
    holds = services.store.load_holds([rows[0].customer["customer_id"]])
    facts = fact_sets(rows[:1], holds, prep.today, prep.derive)[0]
    return explain(prep.rule.conditions, facts.namespaces(prep.shared))


def _leaves(outcome: Outcome | None) -> dict[tuple[str, int], bool]:
    """Each predicate's outcome by its text (and its rank among predicates of that text), in order."""
    out: dict[tuple[str, int], bool] = {}
    seen: dict[str, int] = {}

    def walk(node: Outcome) -> Iterator[Outcome]:
        if isinstance(node.node, Predicate):
            yield node
        for child in node.children:
            yield from walk(child)

    if outcome is not None:
        for leaf in walk(outcome):
            text = leaf.describe()
            seen[text] = seen.get(text, 0) + 1
            out[(text, seen[text])] = leaf.result
    return out


def _explain_change(live: Outcome | None, draft: Outcome | None, before: str, after: str) -> list[dict[str, Any]]:
    """The conditions whose outcome changed or that one version only has (the live version's order,
    then the draft's), and the policy's verdict when the conditions do not explain the change."""
    old, new = _leaves(live), _leaves(draft)
    changed: list[dict[str, Any]] = [{"condition": key[0], "live": old.get(key), "draft": new.get(key)}
                                     for key in [*old, *(k for k in new if k not in old)]
                                     if old.get(key) != new.get(key)]  # None: that version has no such one
    if not changed and live is not None and draft is not None and live.result != draft.result:
        # the same predicates combined otherwise (all <-> any, a not): the whole condition's verdict
        text = draft.describe() if live.describe() == draft.describe() else f"{live.describe()} -> {draft.describe()}"
        changed.append({"condition": text, "live": live.result, "draft": draft.result})
    if before != after and (not changed or NOT_MATCHED not in (before, after)):
        changed.append({"policy": {"live": before, "draft": after}})
    return changed
