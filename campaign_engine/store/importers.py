"""Bulk CSV import of customers, products, deposits and holdings, and the shared upsert writer.

Files are streamed with the csv module, each row is checked by small per-column parsers, and
good rows are upserted in batches (one transaction per batch; re-running a file is safe).
On PostgreSQL a batch is sent with COPY into a temporary table and upserted from there while
the next batch is read; on SQLite it is one executemany.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import partial
from itertools import repeat
from operator import call
from os import PathLike
from pathlib import Path
from typing import Any, Self

from sqlalchemy import Boolean, Connection, Engine, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from .. import demo
from ..errors import Problem
from ..vocabulary import CUSTOMER_RISK_LEVELS, PRODUCT_RISK_LEVELS, Channel, Tier
from .bulk import bind_processor, copy_into_temp, drop_temp
from .models import Consent, Customer, Deposit, Holding, Product

KINDS = ("customers", "products", "deposits", "holdings")

COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id", "name", "gender", "birth_date", "mobile", "email", "city", "branch",
                  "tier", "risk_level", "aum", "rate_sensitive", "sms_consent", "email_consent",
                  "do_not_contact", "language", "manager_id"),
    "products": ("product_code", "name", "type", "risk_level", "rate", "min_amount", "launch_date"),
    "deposits": ("deposit_id", "customer_id", "product_code", "account_no", "amount", "rate",
                 "open_date", "maturity_date", "auto_renew"),
    "holdings": ("customer_id", "product_code", "amount"),
}

_TABLES: dict[str, Table] = {
    "customers": Customer.__table__,  # type: ignore[dict-item]
    "products": Product.__table__,  # type: ignore[dict-item]
    "deposits": Deposit.__table__,  # type: ignore[dict-item]
    "holdings": Holding.__table__,  # type: ignore[dict-item]
}
_CONSENTS: Table = Consent.__table__  # type: ignore[assignment]
_KEYS: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id",),
    "products": ("product_code",),
    "deposits": ("deposit_id",),
    "holdings": ("customer_id", "product_code"),
}
# Largest IN list sent in one query (well under SQLite's and PostgreSQL's bind parameter limits).
_IN_CHUNK = 10_000


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


# --------------------------------------------------------------------------- column parsers


class _Bad(ValueError):
    """A value a column parser rejects; the message is the reason."""


Parser = Callable[[str], Any]


def _text(max_len: int, *, required: bool = False) -> Parser:
    def parse(raw: str) -> str | None:
        value = raw.strip()
        if not value:
            if required:
                raise _Bad("is required")
            return None
        if len(value) > max_len:
            raise _Bad(f"is longer than {max_len} characters")
        return value
    return parse


def _date(raw: str) -> dt.date | None:
    value = raw.strip()
    if not value:
        return None
    if len(value) == 10 and value[4] == "-" and value[7] == "-":
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise _Bad(f"malformed date {value!r}, expected YYYY-MM-DD")


def _decimal(integer_digits: int, scale: int, *, required: bool = False,
             negative: bool = False, empty: Decimal | None = None) -> Parser:
    shape = re.compile(rf"{'-?' if negative else ''}\d{{1,{integer_digits}}}(?:\.\d{{1,{scale}}})?")
    limit = Decimal(10) ** integer_digits
    step = Decimal(1).scaleb(-scale)

    def parse(raw: str) -> Decimal | None:
        value = raw.strip()
        if not value:
            if required:
                raise _Bad("is required")
            return empty
        if shape.fullmatch(value):
            return Decimal(value)
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise _Bad(f"{value!r} is not a number") from None
        if not number.is_finite():
            raise _Bad(f"{value!r} is not a number")
        if number < 0 and not negative:
            raise _Bad(f"{value!r} must not be negative")
        if abs(number) >= limit:
            raise _Bad(f"{value!r} is too large")
        rounded = number.quantize(step)
        if rounded != number:
            raise _Bad(f"{value!r} has more than {scale} decimal places")
        return rounded
    return parse


_BOOLEANS = {"true": True, "1": True, "yes": True, "y": True, "是": True,
             "false": False, "0": False, "no": False, "n": False, "否": False, "": False}


def _bool(raw: str) -> bool:
    value = _BOOLEANS.get(raw.strip().lower())
    if value is None:
        raise _Bad(f"{raw.strip()!r} is not a boolean (true/false, 1/0, yes/no, y/n, 是/否)")
    return value


_TIERS = {tier.value: tier.value for tier in Tier} | {
    "钻石": Tier.DIAMOND.value, "白金": Tier.PLATINUM.value, "金": Tier.GOLD.value,
    "普通": Tier.REGULAR.value, "限制": Tier.RESTRICTED.value}


def _tier(raw: str) -> str:
    value = raw.strip()
    tier = _TIERS.get(value.lower())
    if tier is None:
        if not value:
            raise _Bad("is required")
        raise _Bad(f"unknown tier {value!r}")
    return tier


def _choice(levels: Iterable[str], what: str, *, required: bool = False) -> Parser:
    allowed = frozenset(levels)

    def parse(raw: str) -> str | None:
        value = raw.strip().upper()
        if value in allowed:
            return value
        if not value:
            if required:
                raise _Bad("is required")
            return None
        raise _Bad(f"unknown {what} {raw.strip()!r}")
    return parse


_GENDERS = {"M": "M", "F": "F", "男": "M", "女": "F", "": None}


def _gender(raw: str) -> str | None:
    value = raw.strip().upper()
    if value in _GENDERS:
        return _GENDERS[value]
    raise _Bad(f"unknown gender {raw.strip()!r}, expected M or F")


def _mobile(raw: str) -> str | None:
    if len(raw) == 11 and raw[0] == "1" and raw.isdigit() and raw.isascii():
        return raw
    value = raw.strip()
    if not value:
        return None
    number = value.replace(" ", "").replace("-", "")
    if number.startswith("+86"):
        number = number[3:]
    if len(number) == 11 and number[0] == "1" and number.isascii() and number.isdigit():
        return number
    raise _Bad(f"malformed mobile number {value!r}, expected 11 digits starting with 1")


_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")


def _email(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if len(value) <= 254 and _EMAIL.fullmatch(value):
        return value
    raise _Bad(f"malformed email address {value!r}")


_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{2,4})?")


def _language(raw: str) -> str:
    value = raw.strip().lower().replace("_", "-")
    if not value:
        return "zh"
    if _LANGUAGE.fullmatch(value):
        return value
    raise _Bad(f"malformed language {raw.strip()!r}, expected e.g. zh or en")


_PRODUCT_TYPE = re.compile(r"[a-z_]{1,32}")


def _product_type(raw: str) -> str:
    value = raw.strip().lower()
    if _PRODUCT_TYPE.fullmatch(value):
        return value
    if not value:
        raise _Bad("is required")
    raise _Bad(f"malformed product type {raw.strip()!r}, expected a word of a-z and _")


def _account_no(raw: str) -> str:
    value = raw.strip()
    number = value.replace(" ", "").replace("-", "")
    if 6 <= len(number) <= 40 and number.isascii() and number.isdigit():
        return number
    if not value:
        raise _Bad("is required")
    raise _Bad(f"malformed account number {value!r}, expected 6 to 40 digits")


class _Cached:
    """A parser that remembers its good answers; `fast` is the C-level lookup (KeyError if new)."""

    # For columns with few distinct values (booleans, tiers, dates, cities): the importer's fast
    # path looks values up without a Python call and parses a value only the first time.

    def __init__(self, parse: Parser, limit: int = 4096) -> None:
        self.parse = parse
        self.cache: dict[str, Any] = {}
        self.limit = limit
        self.fast: Parser = self.cache.__getitem__

    def __call__(self, raw: str) -> Any:
        try:
            return self.cache[raw]
        except KeyError:
            pass
        value = self.parse(raw)
        if len(self.cache) < self.limit:
            self.cache[raw] = value
        return value


_DATE = _Cached(_date, limit=100_000)
_BOOL = _Cached(_bool)
_ID = _text(32, required=True)
_MONEY = _decimal(16, 2)
_MONEY_REQUIRED = _decimal(16, 2, required=True)
_RATE = _decimal(5, 4, negative=True)

_PARSERS: dict[str, dict[str, Parser]] = {
    "customers": {
        "customer_id": _ID, "name": _text(64, required=True), "gender": _Cached(_gender),
        "birth_date": _DATE, "mobile": _mobile, "email": _email, "city": _Cached(_text(32)),
        "branch": _Cached(_text(64)), "tier": _Cached(_tier),
        "risk_level": _Cached(_choice(CUSTOMER_RISK_LEVELS, "risk level")),
        "aum": _decimal(16, 2, empty=Decimal(0)), "rate_sensitive": _BOOL, "sms_consent": _BOOL,
        "email_consent": _BOOL, "do_not_contact": _BOOL, "language": _Cached(_language),
        "manager_id": _Cached(_text(32)),
    },
    "products": {
        "product_code": _ID, "name": _text(128, required=True), "type": _product_type,
        "risk_level": _choice(PRODUCT_RISK_LEVELS, "risk level", required=True),
        "rate": _RATE, "min_amount": _MONEY, "launch_date": _DATE,
    },
    "deposits": {
        "deposit_id": _ID, "customer_id": _ID, "product_code": _Cached(_text(32)),
        "account_no": _account_no, "amount": _MONEY_REQUIRED, "rate": _Cached(_RATE),
        "open_date": _DATE, "maturity_date": _DATE, "auto_renew": _BOOL,
    },
    "holdings": {"customer_id": _ID, "product_code": _Cached(_text(32, required=True)),
                 "amount": _MONEY_REQUIRED},
}
# What the importer's fast path calls per column: a cache lookup where there is one.
_FAST: dict[str, list[Parser]] = {
    kind: [getattr(_PARSERS[kind][column], "fast", _PARSERS[kind][column]) for column in columns]
    for kind, columns in COLUMNS.items()}


def _check_customer(row: dict[str, Any], today: dt.date) -> tuple[str, str] | None:
    birth = row["birth_date"]
    if birth is not None and birth > today:
        return "birth_date", f"birth date {birth.isoformat()} is in the future"
    return None


def _check_deposit(row: dict[str, Any], today: dt.date) -> tuple[str, str] | None:
    opened, matures = row["open_date"], row["maturity_date"]
    if opened is not None and matures is not None and matures < opened:
        return ("maturity_date",
                f"maturity date {matures.isoformat()} is before open date {opened.isoformat()}")
    return None


_ROW_CHECKS: dict[str, Callable[[dict[str, Any], dt.date], tuple[str, str] | None]] = {
    "customers": _check_customer, "deposits": _check_deposit}


def parse_row(kind: str, values: Mapping[str, str], *, today: dt.date, file: str | None = None,
              line: int | None = None) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Check one row of text values of a kind: (typed row, []) or (None, its problems)."""
    parsers = _PARSERS[kind]
    row: dict[str, Any] = {}
    problems: list[Problem] = []
    for column, parse in parsers.items():
        try:
            row[column] = parse(values.get(column) or "")
        except _Bad as bad:
            problems.append(Problem(f"{column} {bad}" if str(bad) == "is required" else str(bad),
                                    file=file, line=line, field=column))
    if problems:
        return None, problems
    check = _ROW_CHECKS.get(kind)
    if check is not None:
        failed = check(row, today)
        if failed is not None:
            return None, [Problem(failed[1], file=file, line=line, field=failed[0])]
    return row, []


# --------------------------------------------------------------------------- writer


# Value written for an optional key a row does not have (or has as None).
_DEFAULTS: dict[str, dict[str, Any]] = {
    "customers": {"gender": None, "birth_date": None, "mobile": None, "email": None, "city": None,
                  "branch": None, "risk_level": None, "aum": Decimal(0), "rate_sensitive": False,
                  "do_not_contact": False, "language": "zh", "manager_id": None},
    "products": {"rate": None, "min_amount": None, "launch_date": None},
    "deposits": {"product_code": None, "rate": None, "open_date": None, "maturity_date": None,
                 "auto_renew": False},
    "holdings": {},
}


@dataclass(frozen=True)
class _Same:
    """One value for every row of a batch (processed for the database once, not per row)."""

    value: Any


def _column(rows: list[Mapping[str, Any]], name: str, defaults: Mapping[str, Any]) -> list[Any]:
    if name not in defaults:
        return [r[name] for r in rows]
    default = defaults[name]
    values = [r.get(name) for r in rows]
    if default is not None:
        values = [default if v is None else v for v in values]
    return values


def _stage_upsert(conn: Connection, table: Table, keys: tuple[str, ...],
                  columns: dict[str, list[Any] | _Same], n: int,
                  where: Callable[[Any], Any] | None = None) -> Callable[[], None]:
    """Prepare writing n rows given column-wise; the returned call runs the upsert itself,
    INSERT .. ON CONFLICT (keys) DO UPDATE SET the rest [WHERE where], in the same transaction.

    On PostgreSQL preparing sends the rows (COPY into a temporary table); on SQLite it does nothing.
    """
    if conn.dialect.name == "postgresql":
        return _stage_upsert_postgresql(conn, table, keys, columns, n, where)
    if conn.dialect.name == "sqlite":
        return partial(_execute_upsert_sqlite, conn, table, keys, columns, n, where)
    raise NotImplementedError(  # pragma: no cover - only the two supported databases
        f"upsert is not implemented for {conn.dialect.name}")


def _execute_upsert_sqlite(conn: Connection, table: Table, keys: tuple[str, ...],
                           columns: dict[str, list[Any] | _Same], n: int,
                           where: Callable[[Any], Any] | None) -> None:
    """One driver-level executemany of a statement compiled once, values processed column-wise."""
    # SQLAlchemy's own bind processors keep the stored formats; its per-row parameter handling
    # would cost a third of the import speed.
    dialect = conn.dialect
    stmt = sqlite.insert(table)
    names = list(columns)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: stmt.excluded[name] for name in names if name not in keys},
        where=where(stmt) if where is not None else None)
    compiled = stmt.compile(dialect=dialect, column_keys=names)
    order = list(compiled.positiontup or names)
    prepared = []
    for name in order:
        values = columns[name]
        if isinstance(table.c[name].type, Boolean):
            # sqlite3 stores Python booleans as 1/0; SQLAlchemy's per-value check costs 10%.
            prepared.append([bool(values.value)] * n if isinstance(values, _Same)
                            else list(map(bool, values)))
            continue
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if isinstance(values, _Same):
            prepared.append([process(values.value) if process else values.value] * n)
        else:
            prepared.append(list(map(process, values)) if process else values)
    conn.exec_driver_sql(compiled.string, list(zip(*prepared)))


def _stage_upsert_postgresql(conn: Connection, table: Table, keys: tuple[str, ...],
                             columns: dict[str, list[Any] | _Same], n: int,
                             where: Callable[[Any], Any] | None) -> Callable[[], None]:
    """COPY the rows into a temporary table; the returned call upserts them from there."""
    # COPY is the cheapest way in for client and server alike: with it (and _Batches) 1,000,000
    # customers import from CSV in 32 s instead of 62 s with INSERT .. SELECT FROM unnest(arrays).
    # The temporary table keeps one INSERT .. ON CONFLICT DO UPDATE [WHERE] per batch, as on SQLite.
    names = list(columns)
    prepared: list[Iterable[Any]] = []
    for name in names:
        values = columns[name]
        process = bind_processor(conn, table, name)
        if isinstance(values, _Same):
            prepared.append(repeat(process(values.value) if process else values.value, n))
        else:
            prepared.append(map(process, values) if process else values)
    temp = copy_into_temp(conn, table, names, zip(*prepared), processed=True)
    stmt = postgresql.insert(table).from_select(names, select(*(temp.c[name] for name in names)))
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: stmt.excluded[name] for name in names if name not in keys},
        where=where(stmt) if where is not None else None)

    def upsert() -> None:
        conn.execute(stmt)
        drop_temp(conn, temp)  # not left for a long transaction's end

    return upsert


def _consent_changed(stmt: Any) -> Any:
    """Only touch a consent when `granted` changes, so recorded_at stays the time it was given."""
    return _CONSENTS.c.granted != stmt.excluded.granted


def _dedupe(kind: str, rows: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Last row wins per key (one statement may not touch a row twice on PostgreSQL)."""
    keys = _KEYS[kind]
    if len(keys) == 1:
        key = keys[0]
        unique = {r[key]: r for r in rows}
    else:
        unique = {tuple(r[k] for k in keys): r for r in rows}
    return rows if len(unique) == len(rows) else list(unique.values())


def upsert_rows(conn: Connection, kind: str, rows: list[dict[str, Any]], *,
                now: dt.datetime, source: str) -> int:
    """Insert or update typed rows of a kind (customers also upsert their consents); returns rows written."""
    n, upsert = _stage_rows(conn, kind, rows, now=now, source=source)
    upsert()
    return n


def _stage_rows(conn: Connection, kind: str, rows: list[dict[str, Any]], *,
                now: dt.datetime, source: str) -> tuple[int, Callable[[], None]]:
    """upsert_rows in two steps: stage now (see _stage_upsert), then call to upsert."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}, expected one of {', '.join(KINDS)}")
    if not rows:
        return 0, _nothing
    unique = _dedupe(kind, rows)
    n = len(unique)
    table = _TABLES[kind]
    defaults = _DEFAULTS[kind]
    columns: dict[str, list[Any] | _Same] = {}
    if kind != "customers":
        for c in table.columns:
            columns[c.name] = _column(unique, c.name, defaults)
        return n, _stage_upsert(conn, table, _KEYS[kind], columns, n)
    for c in table.columns:
        if c.name == "birth_mmdd":
            births = (r.get("birth_date") for r in unique)
            columns[c.name] = [b.month * 100 + b.day if b else None for b in births]
        elif c.name == "updated_at":
            columns[c.name] = _Same(now)
        else:
            columns[c.name] = _column(unique, c.name, defaults)
    steps = [_stage_upsert(conn, table, _KEYS[kind], columns, n)]
    ids = [r["customer_id"] for r in unique]
    for channel, key in ((Channel.SMS.value, "sms_consent"), (Channel.EMAIL.value, "email_consent")):
        granted = [r.get(key) for r in unique]
        customers = ids
        if None in granted:  # a row without this consent leaves the stored one alone
            pairs = [(c, g) for c, g in zip(ids, granted) if g is not None]
            customers, granted = [c for c, _ in pairs], [g for _, g in pairs]
        if customers:
            steps.append(_stage_upsert(
                conn, _CONSENTS, ("customer_id", "channel"),
                {"customer_id": customers, "channel": _Same(channel), "granted": granted,
                 "source": _Same(source), "recorded_at": _Same(now)},
                len(customers), where=_consent_changed))

    def upsert() -> None:
        for step in steps:  # customers before their consents
            step()

    return n, upsert


def _nothing() -> None:
    pass


# --------------------------------------------------------------------------- CSV import


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
    customers = _existing(conn, _TABLES["customers"], "customer_id",
                          {row["customer_id"] for _, row in pending})
    products = _existing(conn, _TABLES["products"], "product_code",
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


def _write_batch(batches: _Batches, report: ImportReport, pending: list[tuple[int, dict[str, Any]]],
                 now: dt.datetime, source: str) -> None:
    """Check references and upsert one batch in its own transaction."""
    if not pending:
        return

    def stage(conn: Connection) -> tuple[int, Callable[[], None]]:
        if report.kind in ("deposits", "holdings"):
            rows = _drop_unknown_references(conn, report.kind, pending, report)
        else:
            rows = [row for _, row in pending]
        return _stage_rows(conn, report.kind, rows, now=now, source=source)

    report.upserted += batches.write(stage)


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


def import_csv(engine: Engine, kind: str, path: str | PathLike[str], *, now: dt.datetime,
               batch_size: int = 5000, max_problems: int = 10_000) -> ImportReport:
    """Stream a UTF-8 CSV file of a kind into the database; bad rows are reported and skipped."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}, expected one of {', '.join(KINDS)}")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    name = str(path)
    report = ImportReport(kind=kind, file=name)
    source = f"import:{Path(path).name}"
    today = now.date()
    expected = COLUMNS[kind]
    funcs = _FAST[kind]
    check = _ROW_CHECKS.get(kind)
    ncols = len(expected)
    pending: list[tuple[int, dict[str, Any]]] = []
    problems = report.problems
    unlisted = 0  # problems beyond max_problems: counted, not kept
    try:
        handle = open(path, encoding="utf-8-sig", newline="")
    except OSError as error:
        problems.append(Problem(f"cannot open the file: {error.strerror or error}", file=name))
        return report
    with _Batches(engine) as batches, handle:
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
                    failed = check(row, today) if check is not None else None
                except (_Bad, KeyError):
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
                    _write_batch(batches, report, pending, now, source)
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
        _write_batch(batches, report, pending, now, source)
    if len(problems) > max_problems:
        unlisted += len(problems) - max_problems
        del problems[max_problems:]
    problems.sort(key=lambda problem: problem.line or 0)
    if unlisted:
        problems.append(Problem(f"{unlisted} more problem(s) not listed", file=name))
    return report


# --------------------------------------------------------------------------- demo data


# Demo rows per batch on PostgreSQL at least: 1,000,000 customers load in 53 s in batches of
# 5,000 and in 46 s in batches of 20,000 (2 cores), for 35 MB more memory.
POSTGRESQL_DEMO_BATCH = 20_000


def load_demo_data(engine: Engine, customers: int, *, seed: int, today: dt.date, now: dt.datetime,
                   batch_size: int = 5000) -> dict[str, int]:
    """Generate and upsert the demo bank (products, customers, deposits, holdings); counts per kind.

    One transaction per batch of batch_size rows; on PostgreSQL at least POSTGRESQL_DEMO_BATCH.
    """
    sources: list[tuple[str, Iterable[dict[str, Any]]]] = [
        ("products", demo.generate_products()),
        ("customers", demo.generate_customers(customers, seed=seed, today=today)),
        ("deposits", demo.generate_deposits(customers, seed=seed, today=today)),
        ("holdings", demo.generate_holdings(customers, seed=seed)),
    ]
    counts = {kind: 0 for kind, _ in sources}
    if engine.dialect.name == "postgresql":
        batch_size = max(batch_size, POSTGRESQL_DEMO_BATCH)
    with _Batches(engine) as batches:
        for kind, rows in sources:
            for batch in _batched(rows, batch_size):
                counts[kind] += batches.write(partial(_stage_rows, kind=kind, rows=batch, now=now,
                                                      source="demo-data"))
    return counts


def _batched(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Batches:
    """Writes batches one transaction each, in order; the first failure stops the rest.

    write(stage) opens a transaction and calls stage(conn), which checks and stages the batch
    and returns (rows, upsert); upsert() and the commit follow. On PostgreSQL they run on a
    thread of their own, one batch after another, while the caller stages the next batch on
    another connection (staging sends the rows with COPY; the upsert is the database's work), so
    the client and the database each keep a core busy. Elsewhere everything runs in the caller.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._pool = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="campaign-engine-upsert")
                      if engine.dialect.name == "postgresql" else None)
        self._running: Future[None] | None = None
        self._failed = threading.Event()

    def write(self, stage: Callable[[Connection], tuple[int, Callable[[], None]]]) -> int:
        """Stage a batch and have it upserted and committed; returns its rows."""
        if self._pool is None:
            with self._engine.begin() as conn:
                n, upsert = stage(conn)
                upsert()
            return n
        conn = self._engine.connect()
        try:
            conn.begin()
            n, upsert = stage(conn)
        except BaseException:
            conn.close()  # rolls back
            raise
        previous, self._running = self._running, self._pool.submit(self._commit, conn, upsert)
        if previous is not None:
            previous.result()  # at most one batch staged ahead; an earlier failure is raised here
        return n

    def _commit(self, conn: Connection, upsert: Callable[[], None]) -> None:
        with conn:  # closing rolls back what is not committed
            if self._failed.is_set():
                return  # an earlier batch failed (or the caller gave up): its error is reported
            try:
                upsert()
                conn.commit()
            except BaseException:
                self._failed.set()
                raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, error_type: type[BaseException] | None, *_: object) -> None:
        if self._pool is None:
            return
        if error_type is not None:
            self._failed.set()  # the batch staged ahead is rolled back, not written
        try:
            if self._running is not None and error_type is None:
                self._running.result()
        finally:
            self._pool.shutdown(wait=True)
