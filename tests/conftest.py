"""Shared fixtures: a real database migrated by Alembic, settings pointing at it, a clock."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from sqlalchemy import text

from campaign_engine.settings import PROJECT_ROOT, load_settings
from campaign_engine.store.db import make_engine, upgrade_database
from campaign_engine.store.models import Base

TEST_DATABASE_URL = os.environ.get("CAMPAIGN_ENGINE_TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """SQLite in a temp folder by default; PostgreSQL when CAMPAIGN_ENGINE_TEST_DATABASE_URL is set.

    The schema is built once per session by the Alembic migrations, as in production.
    """
    if TEST_DATABASE_URL:
        url = TEST_DATABASE_URL
        engine = make_engine(url)
        with engine.begin() as conn:  # start from an empty database
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    upgrade_database(url)
    return url


@pytest.fixture
def engine(database_url: str):
    """An engine on the migrated test database, emptied before each test."""
    engine = make_engine(database_url)
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    yield engine
    engine.dispose()


@pytest.fixture
def settings(database_url: str, engine, tmp_path: Path):
    """Settings on the test database, the project's rules and templates, and the default config."""
    return load_settings(env={}, database_url=database_url)


@pytest.fixture
def today() -> dt.date:
    return dt.date(2026, 3, 10)


@pytest.fixture
def now() -> dt.datetime:
    return dt.datetime(2026, 3, 10, 1, 30, tzinfo=dt.timezone.utc)


__all__ = ["PROJECT_ROOT"]
