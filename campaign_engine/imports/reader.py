"""Reading an import CSV file: its header, its rows through the row parsers, and every problem
located by line, into an ImportReport; good rows go in batches to a writer the caller passes.

Files are streamed with the csv module (UTF-8, with or without a BOM). A row is parsed on a fast
path (cached parsers, no problem collected) and only on failure again value by value, so that
every problem of a bad row is reported. A file holds one row per key (rows.KEYS): a later row
with a key already seen is refused, never written over the first. The caller writes the batches
(and checks what the rows refer to): no database here.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from operator import call, itemgetter
from os import PathLike
from typing import Any

from ..errors import Problem
from .rows import COLUMNS, FAST_PARSERS, KEYS, KINDS, OPTIONAL, ROW_CHECKS, BadValue, check_row


@dataclass
class ImportReport:
    """What one CSV import read, wrote and refused: every row read is upserted or refused."""

    kind: str
    file: str
    rows: int = 0
    upserted: int = 0
    refused: int = 0  # rows with at least one problem (a row may have several)
    problems: list[Problem] = field(default_factory=list)
    unlisted: int = 0  # problems beyond the cap: counted, not listed (the last problem says how many)

    @property
    def ok(self) -> bool:
        """True when the file had no problem at all."""
        return not self.problems

    @property
    def problem_count(self) -> int:
        """Every problem found, listed or not."""
        return len(self.problems) + self.unlisted - (1 if self.unlisted else 0)

    def summary(self) -> str:
        """One line whose numbers add up: rows read = upserted + refused."""
        return (f"{self.kind}: {self.rows} row(s) read: {self.upserted} upserted, {self.refused} refused "
                f"({self.problem_count} problem(s))")


Rows = list[tuple[int, dict[str, Any]]]  # (line, typed row) pairs
# Writes one batch of good rows and adds what it wrote to the report (`upserted`); rows it refuses
# (an unknown customer, say) it reports there too (problems, `refused`). The refused rows of the
# batch come too, with the values that parsed: their references are checked and reported alike
# (problems only), so that a bad row's every problem is reported at once.
BatchWriter = Callable[[ImportReport, Rows, Rows], None]


def _duplicate(kind: str, key: Any, first: int) -> str:
    """Why a row whose key is also on line abs(first) is refused (first < 0: that row was refused)."""
    columns = KEYS[kind]
    values = key if len(columns) > 1 else (key,)
    what = " and ".join(f"{column} {value!r}" for column, value in zip(columns, values))
    if first > 0:
        return f"{what} also on line {first}; the first row was kept"
    return f"{what} also on line {-first}; only the first row is imported, and it was refused"


def _cap(problems: list[Problem], max_problems: int) -> int:
    """Keep the first max_problems problems; returns how many were dropped."""
    over = max(0, len(problems) - max_problems)
    del problems[max_problems:]
    return over


def _read_header(reader: Iterator[list[str]], kind: str, report: ImportReport) -> list[tuple[str, int]] | None:
    """(column, position) of the kind's columns the file has, in COLUMNS order (an optional column may be
    absent), or None (with file-level problems) if unusable."""
    header = next(reader, None)
    if header is None:
        report.problems.append(Problem("the file is empty: a header row is required", file=report.file))
        return None
    names = [name.strip().lower() for name in header]
    expected = COLUMNS[kind]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    missing = [c for c in expected if c not in names and c not in OPTIONAL.get(kind, ())]
    unknown = [n for n in names if n not in expected]
    if missing:
        report.problems.append(Problem(
            f"missing column(s) {', '.join(missing)}; a {kind} file needs {','.join(expected)}",
            file=report.file, line=1))
    if unknown:
        report.problems.append(Problem(f"unknown column(s) {', '.join(map(repr, unknown))}",
                                       file=report.file, line=1))
    if duplicated:
        report.problems.append(Problem(f"duplicated column(s) {', '.join(duplicated)}",
                                       file=report.file, line=1))
    if missing or unknown or duplicated:
        return None
    return [(c, names.index(c)) for c in expected if c in names]


def read_csv(kind: str, path: str | PathLike[str], *, today: dt.date, write_batch: BatchWriter,
             batch_size: int = 5000, max_problems: int = 10_000) -> ImportReport:
    """Stream a UTF-8 CSV file of a kind to write_batch in batches; bad rows are reported and refused.

    At most max_problems problems are kept (sorted by line), then one saying how many more there were.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}, expected one of {', '.join(KINDS)}")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    name = str(path)
    report = ImportReport(kind=kind, file=name)
    expected = COLUMNS[kind]
    funcs = FAST_PARSERS[kind]
    check = ROW_CHECKS.get(kind)
    key_of = itemgetter(*KEYS[kind])
    key_field = KEYS[kind][0]
    # Each key's first line (negative when that row was refused): the whole file's keys, ~100 bytes each.
    first_lines: dict[Any, int] = {}
    first_line = first_lines.setdefault
    ncols = len(expected)
    pending: Rows = []
    refused: Rows = []
    problems = report.problems
    unlisted = 0  # problems beyond max_problems: counted, not kept
    try:
        handle = open(path, encoding="utf-8-sig", newline="")
    except OSError as error:
        problems.append(Problem(f"cannot open the file: {error.strerror or error}", file=name))
        return report
    with handle:
        reader = csv.reader(handle)
        line = 1
        try:
            present = _read_header(reader, kind, report)
            if present is None:
                return report
            if len(present) < ncols:  # an optional column left out: parse the others only
                expected = tuple(c for c, _ in present)
                funcs = [FAST_PARSERS[kind][COLUMNS[kind].index(c)] for c in expected]
                ncols = len(expected)
            positions = [p for _, p in present]
            in_order = positions == list(range(ncols))
            for values in reader:
                start, line = line + 1, reader.line_num
                if not any(values):
                    continue  # blank line (or a row of empty cells)
                report.rows += 1
                if len(values) != ncols:
                    problems.append(Problem(f"expected {ncols} fields, found {len(values)}",
                                            file=name, line=start))
                    report.refused += 1
                    continue
                if not in_order:
                    values = [values[p] for p in positions]
                try:  # fast path: every value good (and mostly seen before), a key not seen before
                    row = dict(zip(expected, map(call, funcs, values)))
                    failed: tuple[str, str] | bool | None = check(row, today) if check is not None else None
                    if failed is None and first_line(key_of(row), start) != start:
                        failed = True
                except (BadValue, KeyError):
                    failed = True
                if failed is not None:  # slow path: parse each value, collect every problem
                    row, row_problems = check_row(kind, dict(zip(expected, values)), today=today,
                                                  file=name, line=start)
                    try:
                        key = key_of(row)
                    except KeyError:  # a key value did not parse: reported already
                        pass
                    else:
                        mark = -start if row_problems else start
                        first = first_line(key, mark)
                        if first != mark:
                            row_problems.append(Problem(_duplicate(kind, key, first), file=name, line=start,
                                                        field=key_field))
                    if row_problems:
                        problems += row_problems
                        report.refused += 1
                        refused.append((start, row))
                        if len(refused) >= batch_size:  # a file of bad rows: checked in batches too
                            write_batch(report, [], refused)
                            refused = []
                            unlisted += _cap(problems, max_problems)
                        continue
                pending.append((start, row))
                if len(pending) >= batch_size:
                    write_batch(report, pending, refused)
                    pending, refused = [], []
                    unlisted += _cap(problems, max_problems)
        except UnicodeDecodeError:
            problems.append(Problem(
                f"the file is not valid UTF-8 (at or after line {line + 1}); save it as UTF-8 "
                "(e.g. convert a GBK/GB18030 export) and import it again", file=name))
        except csv.Error as error:
            problems.append(Problem(f"unreadable CSV: {error}", file=name, line=line + 1))
        write_batch(report, pending, refused)
    unlisted += _cap(problems, max_problems)
    problems.sort(key=lambda problem: problem.line or 0)  # stable: a row's problems keep their order
    if unlisted:
        problems.append(Problem(f"{unlisted} more problem(s) not listed", file=name))
        report.unlisted = unlisted
    return report
