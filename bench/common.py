"""What the benchmarks share: the machine line, database preparation, demo data, peak RSS.

A benchmark names its database with --database-url, or gets a fresh SQLite file under bench/out/.
A PostgreSQL database is created when missing and emptied (every table dropped, then the schema
rebuilt by the Alembic migrations); only databases named bench* are touched, so a mistyped URL
cannot empty a real one. With `reuse`, a database already holding exactly N customers keeps its
data and skips the demo-data load. Either way the starter pack (rules/, templates/) is published
into it (approval off): runs read the published rule set, not the folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import os
import platform
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import inspect, make_url, text  # noqa: E402

from campaign_engine.store.db import make_engine, upgrade_database  # noqa: E402
from campaign_engine.demo.loader import load_demo_data  # noqa: E402


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """Cores, RAM, CPU and Python of this machine."""
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} cores, {mem_gb:.0f} GiB RAM, {_cpu_model()} ({platform.machine()}), "
            f"Python {platform.python_version()}")


def database(url: str) -> str:
    """The database's kind and version (and PostgreSQL's memory settings)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                version = conn.exec_driver_sql("SHOW server_version").scalar()
                buffers = conn.exec_driver_sql("SHOW shared_buffers").scalar()
                work_mem = conn.exec_driver_sql("SHOW work_mem").scalar()
                return (f"PostgreSQL {version} (shared_buffers {buffers}, work_mem {work_mem}) "
                        f"at {engine.url.host}:{engine.url.port or 5432}/{engine.url.database}")
            if engine.dialect.name == "sqlite":
                version = conn.exec_driver_sql("SELECT sqlite_version()").scalar()
                return f"SQLite {version} (Python sqlite3 module {sqlite3.version}) in {engine.url.database}"
            return engine.dialect.name
    finally:
        engine.dispose()


def describe(url: str) -> str:
    """The machine and the database, and the load average: other processes sharing the cores skew timings."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"machine: {machine()}; load average {load}\ndatabase: {database(url)}"


def _remove_sqlite(path: Path | str) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def fresh_sqlite_url(name: str) -> str:
    """A new, empty SQLite file bench/out/<name>.db (any earlier one and its WAL removed)."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.db"
    _remove_sqlite(path)
    return f"sqlite:///{path}"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _customer_count(url: str) -> int | None:
    engine = make_engine(url)
    try:
        if not inspect(engine).has_table("customers"):
            return None
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM customers").scalar() or 0)
    finally:
        engine.dispose()


def _empty_postgres(url: str) -> None:
    """Create the database if it is missing, then drop every table in it (schema rebuilt after)."""
    _create_postgres(url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for table in inspect(conn).get_table_names():
                conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{table}" CASCADE')
    finally:
        engine.dispose()


def _create_postgres(url: str) -> None:
    """Create the (bench*) database if it is missing."""
    parsed = make_url(url)
    name = parsed.database or ""
    if not name.startswith("bench"):
        raise SystemExit(f"refusing to empty PostgreSQL database {name!r}: benchmarks only use databases "
                         "named bench*")
    admin = make_engine(parsed.set(database="postgres").render_as_string(hide_password=False),
                        isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()


def _load(url: str, customers: int, seed: int, today: dt.date, now: dt.datetime) -> tuple[dict[str, int], float]:
    started = time.perf_counter()
    counts = load_demo_data(make_engine(url), customers, seed=seed, today=today, now=now)
    return counts, time.perf_counter() - started


def analyze(url: str) -> None:
    """PostgreSQL statistics, as autovacuum would gather them within a minute of a bulk load:
    without them the planner guesses row counts and can pick a poor plan for the candidate queries."""
    engine = make_engine(url)
    try:
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    finally:
        engine.dispose()


def prepare_database(url: str | None, *, name: str, customers: int, reuse: bool, today: dt.date,
                     now: dt.datetime, seed: int = 1) -> str:
    """A migrated database holding `customers` demo customers; its URL. Prints what it did.

    The load runs in a child process, so the caller's peak RSS is its own work's, not the load's.
    """
    if url is None:
        OUT.mkdir(parents=True, exist_ok=True)
        path = OUT / f"{name}.db"
        url = f"sqlite:///{path}"
        if not (reuse and path.exists()):
            url = fresh_sqlite_url(name)
    if reuse:
        if make_url(url).get_backend_name() == "postgresql":
            _create_postgres(url)  # --reuse of a database not made yet: made, then loaded below
        upgrade_database(url)  # a no-op at head; applies migrations added since the load
        found = _customer_count(url)
        if found == customers:
            print(f"demo data: reused, {found} customers already loaded; {publish_rules(url)}")
            return url
        print(f"demo data: cannot reuse ({found} customers found, {customers} wanted): reloading")
    if make_url(url).get_backend_name() == "postgresql":
        _empty_postgres(url)
    elif make_url(url).get_backend_name() == "sqlite" and make_url(url).database not in (None, "", ":memory:"):
        _remove_sqlite(make_url(url).database)  # a fresh file
    upgrade_database(url)
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        counts, seconds = pool.submit(_load, url, customers, seed, today, now).result()
    extra = ""
    if make_url(url).get_backend_name() == "postgresql":  # on SQLite there is nothing to analyze or time
        started = time.perf_counter()
        analyze(url)
        extra = f" (+ VACUUM ANALYZE {time.perf_counter() - started:.1f} s)"
    print(f"demo data: {counts} in {seconds:.1f} s{extra}; {publish_rules(url)}")
    return url


def _approval_off_services(url: str, rules_dir: Path | None = None, templates_dir: Path | None = None) -> Any:
    from campaign_engine.bootstrap import open_services
    from campaign_engine.settings import load_settings

    overrides: dict[str, Any] = {"database_url": url, "approval": "off"}
    if rules_dir is not None:
        overrides["rules_dir"] = rules_dir
    if templates_dir is not None:
        overrides["templates_dir"] = templates_dir
    return open_services(load_settings(**overrides))


def publish_rules(url: str, *, rules_dir: Path | None = None, templates_dir: Path | None = None,
                  enable: tuple[str, ...] = ()) -> str:
    """Publish a rule folder (default: the project's rules/ and templates/, the starter pack) into the
    database, as `rules publish --all` does with approval off. Rules run from the published set, so
    a database without it runs nothing. Unchanged files stay as they are; a rule in `enable` that an
    earlier benchmark left disabled (set_disabled) is switched on again."""
    from campaign_engine.pipeline.publishing import enable as enable_rule, publish_folder

    services = _approval_off_services(url, rules_dir, templates_dir)
    try:
        now = dt.datetime.now(dt.timezone.utc)
        drafts = publish_folder(services, None, note="benchmark", author="bench", now=now)
        bad = [d for d in drafts if d.get("status") != "live"]
        if bad:
            raise SystemExit(f"publishing the rules for the benchmark failed: {bad}")
        live = services.store.live_state(list(enable)) if enable else {}
        for rule_id in enable:
            if rule_id in live and not live[rule_id].get("enabled", True):
                enable_rule(services, rule_id, actor="bench", note="benchmark run", now=now)
        return f"rules published: {len(drafts)} file(s) live"
    finally:
        services.close()


def set_disabled(url: str, rule_id: str, reason: str) -> None:
    """Disable a benchmark's own rule after it (a run of every enabled rule then leaves it out)."""
    from campaign_engine.pipeline.publishing import disable

    services = _approval_off_services(url)
    try:
        if services.store.live_state([rule_id]).get(rule_id, {}).get("enabled"):
            disable(services, rule_id, actor="bench", reason=reason, now=dt.datetime.now(dt.timezone.utc))
    finally:
        services.close()


def profile_call(fn, *args, top: int = 25, **kwargs):  # type: ignore[no-untyped-def]
    """Run fn under cProfile; print the top functions by own time and by cumulative time."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    result = profiler.runcall(fn, *args, **kwargs)
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order)
        stats.print_stats(top)
        text_ = out.getvalue()
        start = text_.find("   ncalls")
        print(f"--- cProfile, top {top} by {order} (profiling slows Python code ~1.5-2x) ---")
        print(text_[start:].rstrip())
    return result


class Workers:
    """`campaign-engine worker` processes on a queue of their own (see README, Scaling)."""

    def __init__(self, processes: list[subprocess.Popen[bytes]], queue: str, logs: list[Path]):
        self.processes, self.queue, self.logs = processes, queue, logs

    def peak_rss_mib(self) -> list[float]:
        """VmHWM of every process in each worker's process group (the pool children do the work)."""
        peaks = []
        groups = {p.pid for p in self.processes}
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                if os.getpgid(int(status.parent.name)) not in groups:
                    continue
                line = next(x for x in status.read_text().splitlines() if x.startswith("VmHWM:"))
            except (OSError, StopIteration, ProcessLookupError):
                continue
            peaks.append(int(line.split()[1]) / 1024)
        return sorted(peaks, reverse=True)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            process.wait(timeout=60)


def start_workers(n: int, url: str, broker: str, shard_size: int | None) -> Workers:
    queue = f"bench-{os.getpid()}"
    env = {**os.environ, "CAMPAIGN_ENGINE_DATABASE_URL": url, "CAMPAIGN_ENGINE_CELERY_BROKER_URL": broker,
           "CAMPAIGN_ENGINE_CELERY_QUEUE": queue, "CAMPAIGN_ENGINE_DELIVERY_TASKS": "0"}
    if shard_size:
        env["CAMPAIGN_ENGINE_SHARD_SIZE"] = str(shard_size)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    processes, logs = [], []
    for i in range(n):
        log = out / f"event_worker{i}.log"
        logs.append(log)
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "campaign_engine.cli", "worker", "--concurrency=1", "--loglevel=INFO"],
            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True))
    deadline = time.monotonic() + 60
    workers = Workers(processes, queue, logs)
    while not all("ready" in log.read_text(errors="replace") for log in logs):
        if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
            workers.stop()
            raise SystemExit("workers did not start: see " + ", ".join(map(str, logs)))
        time.sleep(0.2)
    return workers


def empty_outbox(services) -> int:  # type: ignore[no-untyped-def]
    """Remove earlier runs' messages; how many there were."""
    with services.db.begin() as conn:
        count = int(conn.exec_driver_sql("SELECT count(*) FROM messages").scalar() or 0)
        if count:
            conn.exec_driver_sql("TRUNCATE messages" if services.db.dialect.name == "postgresql"
                                 else "DELETE FROM messages")
    return count


def bench_parser(doc: str | None, customers: int) -> argparse.ArgumentParser:
    """The options every benchmark shares: how many customers, which date, which database."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=customers)
    parser.add_argument("--date", default="2026-03-10")
    parser.add_argument("--database-url")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the database's data when it already holds exactly N customers")
    return parser


def add_worker_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=0,
                        help="execute the run's shards on N `campaign-engine worker` processes (Celery) instead "
                             "of in this process")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/13", help="Celery broker for --workers")
    parser.add_argument("--shard-size", type=int, help="customers per shard (default: the setting)")


def bench_clock(date: str) -> tuple[dt.date, dt.datetime]:
    """The run date and `now`: 10:00 in Shanghai, inside the SMS window, so messages count as
    queued rather than scheduled whatever the time of day the benchmark runs."""
    today = dt.date.fromisoformat(date)
    now = dt.datetime.combine(today, dt.time(10), tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(dt.timezone.utc)
    return today, now


def open_bench_services(args: argparse.Namespace, url: str) -> tuple[Any, "Workers | None"]:
    """Services on the bench database; with --workers, started workers and settings that use them."""
    from campaign_engine.bootstrap import open_services
    from campaign_engine.settings import load_settings

    overrides: dict[str, Any] = {"database_url": url, "shard_size": getattr(args, "shard_size", None)}
    cluster = None
    if getattr(args, "workers", 0):
        cluster = start_workers(args.workers, url, args.broker, args.shard_size)
        overrides.update(celery_broker_url=args.broker, celery_queue=cluster.queue)
    return open_services(load_settings(**overrides)), cluster


def where_executed(args: argparse.Namespace) -> str:
    return (f"{args.workers} Celery worker process(es) over {args.broker}" if getattr(args, "workers", 0)
            else "this process")


def stop_workers(cluster: "Workers | None") -> None:
    if cluster is not None:
        print(f"peak RSS per worker process: {', '.join(f'{m:.0f}' for m in cluster.peak_rss_mib())} MiB")
        cluster.stop()


def microseconds_per_call(fn: Any, args: Any, rounds: int = 5) -> float:
    """Best-of-rounds microseconds per call of fn over each of args (small pure functions)."""
    args = list(args)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for a in args:
            fn(a)
        best = min(best, time.perf_counter() - start)
    return best / len(args) * 1e6
