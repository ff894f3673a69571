"""Shared fixtures: a real database migrated by Alembic, settings pointing at it, a clock."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from sqlalchemy import make_url, text

from campaign_engine.settings import PROJECT_ROOT, load_settings
from campaign_engine.store.db import make_engine, upgrade_database
from campaign_engine.store.models import Base

from console_harness import browser, browsing, client_for, console  # noqa: E402,F401  (the console fixtures)

TEST_DATABASE_URL = os.environ.get("CAMPAIGN_ENGINE_TEST_DATABASE_URL")
# Progress lines are for people watching a long job: the suite's CLI calls (whose output tests read,
# stderr mixed in by CliRunner) print none however slow a loaded machine makes them.
# tests/test_progress.py asks for them explicitly.
os.environ.setdefault("CAMPAIGN_ENGINE_PROGRESS_AFTER", "86400")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory):
    """SQLite in a temp folder by default; on PostgreSQL (CAMPAIGN_ENGINE_TEST_DATABASE_URL) a
    database of this session's own, created beside the named one and dropped afterwards, so
    concurrent test sessions never empty each other's tables.

    The schema is built once per session by the Alembic migrations, as in production.
    """
    if not TEST_DATABASE_URL:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        upgrade_database(url)
        yield url
        return
    base = make_url(TEST_DATABASE_URL)
    name = f"{base.database}_ce_{os.getpid()}"
    admin = make_engine(TEST_DATABASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    upgrade_database(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


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


@pytest.fixture
def world(settings, engine, tmp_path):
    """A rule folder, a template folder and product data on the test database."""
    from factories import World

    world = World(settings, engine, tmp_path)
    yield world
    for services in world.opened:
        services.close()


__all__ = ["PROJECT_ROOT"]
