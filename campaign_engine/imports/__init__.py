"""Pure: the import file formats of customers, products, deposits and holdings, the row parsers
that check them, and the CSV file reader that reports every problem by line.

This package may import only the standard library, campaign_engine.errors and
campaign_engine.vocabulary: never SQLAlchemy, Flask or Celery. Writing rows to the database is
the store's (store.upsert, store.csv_import); the reader hands good rows to a writer it is given.
"""

from .reader import BatchWriter, ImportReport, Rows, read_csv
from .rows import COLUMNS, KEYS, KINDS, check_row, parse_row

__all__ = ["COLUMNS", "KEYS", "KINDS", "BatchWriter", "ImportReport", "Rows", "check_row", "parse_row", "read_csv"]
