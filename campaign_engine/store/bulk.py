"""Batches on PostgreSQL: COPY rows into a temporary table shaped like the target, then one
INSERT .. SELECT from it (with whatever ON CONFLICT the caller needs); a batch's values as one
array parameter.

COPY costs client and server the least per row; a multi-row INSERT with thousands of bound
parameters is re-parsed by the driver each time, and costs several times more.
"""

from __future__ import annotations

import json
from itertools import count
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import (ARRAY, Boolean, ColumnElement, Connection, Select, String, Table, any_, bindparam, func,
                        select)
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import TableClause

_names = count(1)


def one_of(conn: Connection, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """`column IN values` for a batch's thousands of values: on PostgreSQL one array parameter
    (`= ANY(:values)`), since a statement with thousands of placeholders is parsed again by
    the driver for every batch; on SQLite an expanding IN."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    listed_values = list(values)
    if len(listed_values) > _JSON_IN_MIN and all(type(v) is str or type(v) is int for v in listed_values):
        # SQLite's like of the array parameter: one JSON text, `IN (SELECT value FROM json_each(?))`,
        # which still searches the column's index per value; an expanding IN's thousands of
        # placeholders cost SQLAlchemy more to render per batch than the query costs to run.
        # Text and integers only: a JSON value compares with the column as the bound value would.
        listed: Select[tuple[Any]] = select(sql_column("value")).select_from(func.json_each(
            bindparam(None, json.dumps(listed_values, ensure_ascii=False), type_=String())))
        return column.in_(listed)
    return column.in_(listed_values)


_JSON_IN_MIN = 32  # fewer values: a plain IN (...)


def bind_processor(conn: Connection, table: Table, name: str) -> Callable[[Any], Any] | None:
    """How a column's Python value is sent (UtcDateTime refuses naive datetimes and makes aware
    ones UTC; booleans go as true/false, whatever truthy value the caller had)."""
    type_ = table.c[name].type
    if isinstance(type_, Boolean):
        return bool
    return type_.dialect_impl(conn.dialect).bind_processor(conn.dialect)


def copy_into_temp(conn: Connection, table: Table, names: Sequence[str],
                   rows: Iterable[Sequence[Any]], *, processed: bool = False) -> TableClause:
    """COPY `rows` (tuples in `names` order) into a new temporary table with the target's column
    types (VARCHAR(n) included: an over-long value fails as the INSERT would; no defaults or
    constraints: LIKE would bring a sequence), dropped at commit. Values go through the columns'
    bind processors, unless the caller has `processed` them already."""
    dialect = conn.dialect
    processors = [None if processed else bind_processor(conn, table, name) for name in names]
    plain = all(p is None for p in processors)
    quote = dialect.identifier_preparer.quote
    listed = ", ".join(quote(n) for n in names)
    temp = sql_table(f"_bulk_{table.name}_{next(_names)}", *(sql_column(n) for n in names))
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {temp.name} ON COMMIT DROP AS SELECT {listed} "
                         f"FROM {dialect.identifier_preparer.format_table(table)} WITH NO DATA")
    statement = f"COPY {temp.name} ({listed}) FROM STDIN"
    driver = conn.connection.driver_connection
    assert driver is not None
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            write_row = copy.write_row
            for row in rows:
                write_row(row if plain else [v if p is None or v is None else p(v)
                                             for p, v in zip(processors, row)])
    except dialect.loaded_dbapi.Error as error:  # as any other statement's error: a DBAPIError
        raise DBAPIError.instance(statement, None, error, dialect.loaded_dbapi.Error,
                                  dialect=dialect) from error
    return temp


def drop_temp(conn: Connection, temp: TableClause) -> None:
    """Drop a staged table now rather than at the end of a long transaction."""
    conn.exec_driver_sql(f"DROP TABLE {temp.name}")
