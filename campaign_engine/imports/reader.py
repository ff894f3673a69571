"""Reading an import CSV file: its header, its rows through the row parsers, and every problem
located by line, into an ImportReport; good rows go in batches to a writer the caller passes.

Files are streamed with the csv module (UTF-8, with or without a BOM). A row is parsed on a fast
path (cached parsers, no problem collected) and only on failure again value by value, so that
every problem of a bad row is reported. The caller writes the batches: no database here.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from operator import call
from os import PathLike
from typing import Any

from ..errors import Problem
from .rows import COLUMNS, FAST_PARSERS, KINDS, ROW_CHECKS, BadValue, parse_row


@dataclass
class ImportReport:
    """What one CSV import read, wrote and rejected."""

    kind: str
    file: str
    rows: int = 0
    upserted: int = 0
    skipped: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the file had no problem at all."""
        return not self.problems


# Writes one batch of good rows, given as (line, row) pairs, and adds what it wrote to the report
# (`upserted`); rows it refuses it reports there too (problems, `skipped`).
BatchWriter = Callable[[ImportReport, list[tuple[int, dict[str, Any]]]], None]


def _read_header(reader: Iterator[list[str]], kind: str, report: ImportReport) -> list[int] | None:
    """Positions of the kind's columns in the file, or None (with file-level problems) if unusable."""
    header = next(reader, None)
    if header is None:
        report.problems.append(Problem("the file is empty: a header row is required", file=report.file))
        return None
    names = [name.strip().lower() for name in header]
    expected = COLUMNS[kind]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    missing = [c for c in expected if c not in names]
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
    return [names.index(c) for c in expected]


def read_csv(kind: str, path: str | PathLike[str], *, today: dt.date, write_batch: BatchWriter,
             batch_size: int = 5000, max_problems: int = 10_000) -> ImportReport:
    """Stream a UTF-8 CSV file of a kind to write_batch in batches; bad rows are reported and skipped.

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
    ncols = len(expected)
    pending: list[tuple[int, dict[str, Any]]] = []
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
            positions = _read_header(reader, kind, report)
            if positions is None:
                return report
            in_order = positions == list(range(ncols))
            for values in reader:
                start, line = line + 1, reader.line_num
                if not any(values):
                    continue  # blank line (or a row of empty cells)
                report.rows += 1
                if len(values) != ncols:
                    problems.append(Problem(f"expected {ncols} fields, found {len(values)}",
                                            file=name, line=start))
                    report.skipped += 1
                    continue
                if not in_order:
                    values = [values[p] for p in positions]
                try:  # fast path: every value good (and mostly seen before)
                    row = dict(zip(expected, map(call, funcs, values)))
                    failed: tuple[str, str] | bool | None = check(row, today) if check is not None else None
                except (BadValue, KeyError):
                    failed = True
                if failed is not None:  # slow path: parse each value, collect every problem
                    parsed, row_problems = parse_row(kind, dict(zip(expected, values)), today=today,
                                                     file=name, line=start)
                    if parsed is None:
                        problems += row_problems
                        report.skipped += 1
                        continue
                    row = parsed
                pending.append((start, row))
                if len(pending) >= batch_size:
                    write_batch(report, pending)
                    pending = []
                    if len(problems) > max_problems:
                        unlisted += len(problems) - max_problems
                        del problems[max_problems:]
        except UnicodeDecodeError:
            problems.append(Problem(
                f"the file is not valid UTF-8 (at or after line {line + 1}); save it as UTF-8 "
                "(e.g. convert a GBK/GB18030 export) and import it again", file=name))
        except csv.Error as error:
            problems.append(Problem(f"unreadable CSV: {error}", file=name, line=line + 1))
        write_batch(report, pending)
    if len(problems) > max_problems:
        unlisted += len(problems) - max_problems
        del problems[max_problems:]
    problems.sort(key=lambda problem: problem.line or 0)
    if unlisted:
        problems.append(Problem(f"{unlisted} more problem(s) not listed", file=name))
    return report
