"""CSV import into the database: a file read by imports.reader, deposits and holdings whose
customer or product is not in the database reported and dropped, good rows upserted in batches
(one transaction per batch; re-running a file is safe).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial
from os import PathLike
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, select

from ..errors import Problem
from ..imports import ImportReport, read_csv
from .models import Customer, Product
from .upsert import Batches, stage_rows

_CUSTOMERS: Table = Customer.__table__  # type: ignore[assignment]
_PRODUCTS: Table = Product.__table__  # type: ignore[assignment]
# Largest IN list sent in one query (well under SQLite's and PostgreSQL's bind parameter limits).
_IN_CHUNK = 10_000


def _existing(conn: Connection, table: Table, column: str, values: set[str]) -> set[str]:
    """Which of `values` are present in table.column (one IN query per 10,000 values)."""
    found: set[str] = set()
    col = table.c[column]
    ordered = sorted(values)
    for start in range(0, len(ordered), _IN_CHUNK):
        chunk = ordered[start:start + _IN_CHUNK]
        found.update(conn.execute(select(col).where(col.in_(chunk))).scalars())
    return found


def _drop_unknown_references(conn: Connection, kind: str, pending: list[tuple[int, dict[str, Any]]],
                             report: ImportReport) -> list[dict[str, Any]]:
    """Report and drop rows whose customer or product is not in the database."""
    customers = _existing(conn, _CUSTOMERS, "customer_id",
                          {row["customer_id"] for _, row in pending})
    products = _existing(conn, _PRODUCTS, "product_code",
                         {row["product_code"] for _, row in pending if row["product_code"]})
    good = []
    for line, row in pending:
        bad = False
        if row["customer_id"] not in customers:
            report.problems.append(Problem(f"unknown customer {row['customer_id']!r}",
                                           file=report.file, line=line, field="customer_id"))
            bad = True
        code = row["product_code"]
        if code and code not in products:
            report.problems.append(Problem(f"unknown product_code {code!r}",
                                           file=report.file, line=line, field="product_code"))
            bad = True
        if bad:
            report.skipped += 1
        else:
            good.append(row)
    return good


def _write_batch(batches: Batches, report: ImportReport, pending: list[tuple[int, dict[str, Any]]],
                 now: dt.datetime, source: str) -> None:
    """Check references and upsert one batch in its own transaction."""
    if not pending:
        return

    def stage(conn: Connection) -> tuple[int, Callable[[], None]]:
        if report.kind in ("deposits", "holdings"):
            rows = _drop_unknown_references(conn, report.kind, pending, report)
        else:
            rows = [row for _, row in pending]
        return stage_rows(conn, report.kind, rows, now=now, source=source)

    report.upserted += batches.write(stage)


def import_csv(engine: Engine, kind: str, path: str | PathLike[str], *, now: dt.datetime,
               batch_size: int = 5000, max_problems: int = 10_000) -> ImportReport:
    """Stream a UTF-8 CSV file of a kind into the database; bad rows are reported and skipped."""
    source = f"import:{Path(path).name}"
    with Batches(engine) as batches:
        return read_csv(kind, path, today=now.date(), batch_size=batch_size, max_problems=max_problems,
                        write_batch=partial(_write_batch, batches, now=now, source=source))
