"""CSV import into the database: a file read by imports.reader, deposits and holdings whose
customer or product is not in the database reported and refused, good rows upserted in batches
(one transaction per batch; re-running a file is safe).

Conversions are recorded once per conversion_id (store.conversions), never updated; deposit and
holdings imports also record the conversions their changes make, in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial
from os import PathLike
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, Table, select

from ..errors import Problem
from ..imports import ImportReport, Rows, read_csv
from . import conversions
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


def _unknown_references(conn: Connection, rows: Rows, report: ImportReport) -> set[int]:
    """Report each row's customer and product not in the database; returns the lines with one.

    Rows may lack a value that did not parse (a refused row): what it has is checked.
    """
    customers = _existing(conn, _CUSTOMERS, "customer_id",
                          {row["customer_id"] for _, row in rows if row.get("customer_id")})
    products = _existing(conn, _PRODUCTS, "product_code",
                         {row["product_code"] for _, row in rows if row.get("product_code")})
    bad = set()
    for line, row in rows:
        customer, code = row.get("customer_id"), row.get("product_code")
        if customer and customer not in customers:
            report.problems.append(Problem(f"unknown customer {customer!r}",
                                           file=report.file, line=line, field="customer_id"))
            bad.add(line)
        if code and code not in products:
            report.problems.append(Problem(f"unknown product_code {code!r}",
                                           file=report.file, line=line, field="product_code"))
            bad.add(line)
    return bad


def _record_conversions(conn: Connection, report: ImportReport, pending: Rows, *, tz: ZoneInfo | dt.timezone,
                        now: dt.datetime, source: str) -> tuple[int, Callable[[], None]]:
    """A batch of conversions: a conversion_id recorded before with other values is refused (with
    its line), one recorded alike is accepted again (written nothing), new ones are recorded."""
    rows = [{**row, "occurred_at": conversions.occurred_at(row["occurred_at"], tz=tz, now=now)}
            for _, row in pending]
    found = conversions.sort_batch(conn, rows)
    for position, reason in sorted(found.conflicts.items()):
        report.problems.append(Problem(reason, file=report.file, line=pending[position][0], field="conversion_id"))
    report.refused += len(found.conflicts)

    def record() -> None:
        conversions.insert_conversions(conn, found.fresh, source=source, now=now)

    return len(rows) - len(found.conflicts), record


def _write_batch(batches: Batches, report: ImportReport, pending: Rows, refused: Rows,
                 now: dt.datetime, source: str, tz: ZoneInfo | dt.timezone = dt.timezone.utc,
                 derive: bool = False) -> None:
    """Check references (of the refused rows too, to report them) and upsert one batch in its
    own transaction (with the conversions the changes make, when `derive`)."""
    references = report.kind in ("deposits", "holdings", "conversions")
    if not pending and not (references and refused):
        return

    def stage(conn: Connection) -> tuple[int, Callable[[], None]]:
        rows = [row for _, row in pending]
        bad: set[int] = set()
        if references:
            bad = _unknown_references(conn, pending + refused, report)
            if bad:
                rows = [row for line, row in pending if line not in bad]
                report.refused += len(pending) - len(rows)
        if report.kind == "conversions":
            good = [(line, row) for line, row in pending if line not in bad]
            return _record_conversions(conn, report, good, tz=tz, now=now, source=source)
        derived = []
        if derive and report.kind == "deposits":
            derived = conversions.deposit_conversions(conn, rows, tz=tz, now=now)
        elif derive and report.kind == "holdings":
            derived = conversions.holding_conversions(conn, rows, now=now)
        n, upsert = stage_rows(conn, report.kind, rows, now=now, source=source)
        if not derived:
            return n, upsert

        def upsert_and_record() -> None:
            upsert()
            conversions.insert_conversions(conn, derived, source=f"{source} ({report.kind})", now=now)

        return n, upsert_and_record

    report.upserted += batches.write(stage)


def import_csv(engine: Engine, kind: str, path: str | PathLike[str], *, now: dt.datetime,
               batch_size: int = 5000, max_problems: int = 10_000,
               tz: ZoneInfo | dt.timezone = dt.timezone.utc,
               on_batch: Callable[[ImportReport], None] | None = None) -> ImportReport:
    """Stream a UTF-8 CSV file of a kind into the database; bad rows are reported and refused.

    `tz` places conversions' dates and naive times (the configured time zone). Deposits and
    holdings imports record the conversions their changes make, except the first import into an
    empty table (the bank's book as it stands: where measuring starts).
    """
    source = f"import:{Path(path).name}"
    derive = False
    if kind in ("deposits", "holdings"):
        with engine.connect() as conn:
            derive = conversions.has_rows(conn, kind)
    with Batches(engine) as batches:
        write = partial(_write_batch, batches, now=now, source=source, tz=tz, derive=derive)

        def write_and_tell(report: ImportReport, pending: Rows, refused: Rows) -> None:
            write(report, pending, refused)
            if on_batch is not None:  # progress: rows read so far
                on_batch(report)

        return read_csv(kind, path, today=now.astimezone(tz).date(), batch_size=batch_size,
                        max_problems=max_problems, write_batch=write_and_tell)
