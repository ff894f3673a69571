"""Where a run's time goes, by stage: one run under cProfile, the cumulative time of the pipeline's
stage functions summed (used by run_batch.py --stages; not a benchmark of its own).

A stage is the cumulative time of the functions named below, less the part of a nested stage's
functions called from them (read from cProfile's callers, so a stage nested elsewhere by another
version of the code is never subtracted twice). A function the current code no longer calls is
reported as such and its time ends up in the unattributed rest. Only public names of
campaign_engine are looked up, by file and function name, so the split follows the code as it is.

cProfile slows Python code roughly 1.5-2x and SQL waits hardly at all: the absolute figures are
inflated, unevenly; the shares are what to read, beside the un-profiled wall time of the same run.
"""

from __future__ import annotations

import cProfile
import pstats
import time
from dataclasses import dataclass
from typing import Any, Callable

Key = tuple[str, int, str]  # pstats' (file, line, function)
Fn = tuple[str, str]  # (file path suffix, function name)

SELECT = ("store/sql_store.py", "select_candidates")
SELECT_INNER = ("store/candidates.py", "select_candidates")
EVALUATE_BATCH = ("pipeline/batch.py", "evaluate_batch")
FACT_SETS = ("pipeline/batch.py", "fact_sets")
NAMESPACES = ("facts/namespaces.py", "namespaces")
FLATTEN = ("facts/namespaces.py", "flatten")
ENGINE = ("evaluation/engine.py", "evaluate")
LOAD_HOLDS = ("store/sql_store.py", "load_holds")
EXISTING = ("store/sql_store.py", "existing_messages")
EXISTING_TASKS = ("store/sql_store.py", "existing_tasks")
CONTACT_STATE = ("pipeline/batch.py", "contact_state")
DECIDE = ("pipeline/batch.py", "decide_and_render")
RENDER = ("rendering/environment.py", "render_message")
MESSAGE_ROW = ("pipeline/batch.py", "message_row")
INSERT = ("store/sql_store.py", "insert_messages")


@dataclass(frozen=True)
class Stage:
    label: str
    plus: tuple[Fn, ...]  # cumulative time of these
    minus: tuple[tuple[Fn, Fn], ...] = ()  # (callee, caller): less the callee's time called from the caller
    fallback: tuple[Fn, ...] = ()  # when no `plus` function was called


STAGES = (
    Stage("candidate select/read (SQL, rows decoded)", (SELECT,), fallback=(SELECT_INNER,)),
    Stage("facts (fact_sets, holdings, namespaces, flatten)", (EVALUATE_BATCH,), ((ENGINE, EVALUATE_BATCH),),
          fallback=(FACT_SETS, NAMESPACES, FLATTEN, LOAD_HOLDS)),
    Stage("evaluation (durable-rules)", (ENGINE,)),
    Stage("dedupe check (outbox read)", (EXISTING, EXISTING_TASKS)),
    Stage("contact policy (caps/suppression SQL, decide)", (CONTACT_STATE, DECIDE), ((RENDER, DECIDE),)),
    Stage("rendering (render_message)", (RENDER,)),
    Stage("outbox write (message_row, insert)", (MESSAGE_ROW, INSERT)),
)


def _matches(key: Key, fn: Fn) -> bool:
    return key[2] == fn[1] and key[0].replace("\\", "/").endswith(fn[0])


class Profile:
    def __init__(self, stats: pstats.Stats):
        self.raw: dict[Key, Any] = stats.stats  # type: ignore[attr-defined]

    def keys(self, fn: Fn) -> list[Key]:
        return [k for k in self.raw if _matches(k, fn)]

    def cumulative(self, fn: Fn) -> tuple[float, int]:
        """Seconds and calls of every function matching fn (primitive calls: no recursion counted twice)."""
        seconds, calls = 0.0, 0
        for key in self.keys(fn):
            cc, nc, tt, ct, callers = self.raw[key]
            seconds += ct
            calls += cc
        return seconds, calls

    def called_from(self, callee: Fn, caller: Fn) -> float:
        """The callee's cumulative seconds in calls made directly by the caller."""
        seconds = 0.0
        for key in self.keys(callee):
            for caller_key, value in self.raw[key][4].items():
                if _matches(caller_key, caller):
                    seconds += value[3] if isinstance(value, tuple) else 0.0
        return seconds


# Printed under the stage of the same index: what its functions split into.
DETAILS: dict[int, tuple[Stage, ...]] = {
    4: (Stage("contact_state: caps, suppression, `every` SQL", (CONTACT_STATE,)),
        Stage("decide_and_render less its render_message", (DECIDE,), ((RENDER, DECIDE),))),
    6: (Stage("message_row", (MESSAGE_ROW,)),
        Stage("insert_messages (SQL)", (INSERT,))),
}


@dataclass
class StageTime:
    label: str
    seconds: float
    calls: int
    note: str = ""


def split(profile: Profile, stages: tuple[Stage, ...] = STAGES) -> list[StageTime]:
    out = []
    for stage in stages:
        fns = stage.plus
        seconds, calls = 0.0, 0
        for fn in fns:
            s, c = profile.cumulative(fn)
            seconds, calls = seconds + s, calls + c
        note = ""
        if calls == 0 and stage.fallback:
            fns = stage.fallback
            for fn in fns:
                s, c = profile.cumulative(fn)
                seconds, calls = seconds + s, calls + c
            note = f"(from {', '.join(f[1] for f in fns)}: {', '.join(f[1] for f in stage.plus)} not called)"
        elif calls == 0:
            note = f"({', '.join(f[1] for f in stage.plus)} not called by this code: its time is in the rest)"
        for callee, caller in stage.minus:
            if fns is stage.plus:
                seconds -= profile.called_from(callee, caller)
        out.append(StageTime(stage.label, max(seconds, 0.0), calls, note))
    return out


def profiled(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float, Profile]:
    """fn(*args, **kwargs) under cProfile: its result, the profiled wall seconds, the profile."""
    profiler = cProfile.Profile()
    started = time.perf_counter()
    result = profiler.runcall(fn, *args, **kwargs)
    elapsed = time.perf_counter() - started
    return result, elapsed, Profile(pstats.Stats(profiler))


def print_split(profile: Profile, profiled_seconds: float, unprofiled_seconds: float | None, messages: int,
                candidates: int) -> None:
    """The stages' seconds, µs per message and share of the profiled run, and the rest."""
    stages = split(profile)
    per = 1e6 / messages if messages else 0.0
    rest = profiled_seconds - sum(s.seconds for s in stages)
    print("stage split (cProfile over one more in-process run of the same request; the profiler inflates "
          "absolute figures, Python code about 1.5-2x and SQL waits hardly at all: read the shares):")
    scaled = unprofiled_seconds is not None
    header = f"  {'stage':50} {'profiled s':>10} {'µs/message':>10} {'share':>6}"
    if scaled:
        header += f" {'≈ un-profiled µs/msg':>20}"
    print(header + "   calls")
    base = (unprofiled_seconds or 0.0) * 1e6 / messages if messages else 0.0
    rows: list[tuple[str, StageTime]] = []
    for i, stage_time in enumerate(stages):
        rows.append(("", stage_time))
        rows += [("    ", detail) for detail in split(profile, DETAILS.get(i, ())) if stage_time.calls]
    rows.append(("", StageTime("unattributed rest (run bookkeeping, loop glue)", max(rest, 0.0), 0)))
    for indent, s in rows:
        share = s.seconds / profiled_seconds if profiled_seconds else 0.0
        line = f"  {(indent + s.label):50} {s.seconds:10.2f} {s.seconds * per:10.1f} {100 * share:5.1f}%"
        if scaled:
            line += f" {share * base:20.1f}"
        print(line + (f"   {s.calls:,}" if s.calls else "   -") + (f"  {s.note}" if s.note else ""))
    line = f"  {'total (profiled wall time)':50} {profiled_seconds:10.2f} {profiled_seconds * per:10.1f} {100:5.1f}%"
    print(line + (f" {base:20.1f}" if scaled else ""))
    if unprofiled_seconds:
        print(f"  un-profiled wall time of the same request: {unprofiled_seconds:.2f} s = {base:.1f} µs/message "
              f"(profiled/un-profiled {profiled_seconds / unprofiled_seconds:.2f}x); the last column spreads it by "
              "the profiled shares, a rough guide only (Python stages are over-stated there, SQL ones under)")
    print(f"  per message: over {messages:,} outbox rows written ({candidates:,} candidates read)")
