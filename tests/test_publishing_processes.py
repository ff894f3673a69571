"""Publishing followed by real processes: two gunicorn workers of `campaign-engine serve`, Celery
`campaign-engine worker` processes executing a run that straddles a publish, and the
`campaign-engine scheduler` process rescheduling on a publish.

Each process gets its settings from CAMPAIGN_ENGINE_* environment variables on the test database
(SQLite file, or PostgreSQL with CAMPAIGN_ENGINE_TEST_DATABASE_URL) and a rule and template folder of
the test's own; approval is required, so every change is submitted by one person and approved by
another. Which gunicorn worker answered a request is read from the access log (`%(p)s`, its pid,
through GUNICORN_CMD_ARGS), matched to the request by a `probe` query parameter.

The Celery tests need Redis (CAMPAIGN_ENGINE_TEST_REDIS_URL, default the local one) and are skipped,
with the reason shown, when it does not answer; the others need nothing but the database.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from sqlalchemy import select

from campaign_engine.bootstrap import open_services
from campaign_engine.clock import utc_now
from campaign_engine.pipeline import ScheduledRunRequest, publishing, start_run, wait_for_run
from campaign_engine.runtime import Runtime
from campaign_engine.store import scheduler_jobs
from campaign_engine.store.models import CampaignRun, Message, RunShard
from campaign_engine.store.upsert import upsert_rows
from factories import NOW, TODAY, customer

from test_distributed import REDIS_URL, _redis_answers

ROOT = Path(__file__).resolve().parent.parent
_no_redis = _redis_answers()
needs_redis = pytest.mark.skipif(_no_redis is not None, reason=_no_redis or "")


# --------------------------------------------------------------------------- rules and data

def promo_yaml(name: str, tiers: str, *, rule_id: str = "promo", template: str = "promo",
               schedule: str = "0 9 * * *", field: str = "customer.tier") -> str:
    """A service rule (no consent or caps in the way) whose conditions are on line 7."""
    return (f"id: {rule_id}\nname: {name}\ncategory: service\npriority: 50\n"
            f"trigger: {{schedule: \"{schedule}\", subject: customer}}\n"
            f"conditions:\n  {field}: {{in: [{tiers}]}}\n"
            f"channels: [sms, email]\ntemplate: {template}\n")


def templates(folder: str, marker: str) -> dict[str, str]:
    """A template folder whose every text starts with `marker` (which version rendered a message)."""
    return {f"{folder}/sms.txt.j2": f"{marker} {{{{ rule.name }}}}",
            f"{folder}/email.subject.j2": f"{marker} {{{{ rule.name }}}}",
            f"{folder}/email.txt.j2": f"{marker} {{{{ customer.name }}}}: {{{{ rule.name }}}}"}


def add_customers(engine: Any, tiers: list[str]) -> None:
    rows = [customer(f"C{n:03d}", tier=tier, mobile=f"1380000{n:04d}") for n, tier in enumerate(tiers, 1)]
    with engine.begin() as conn:
        upsert_rows(conn, "customers", rows, now=NOW, source="test")


def messages_of(engine: Any, run_id: int) -> list[Message]:
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        return list(session.scalars(select(Message).where(Message.run_id == run_id).order_by(Message.id)))


# --------------------------------------------------------------------------- processes

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_env(values: dict[str, str]) -> dict[str, str]:
    """This environment without any CAMPAIGN_ENGINE_* setting of its own, with `values` as settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CAMPAIGN_ENGINE_") or k.startswith("CAMPAIGN_ENGINE_TEST_")}
    env.update({f"CAMPAIGN_ENGINE_{k.upper()}": v for k, v in values.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Process:
    """A `campaign-engine` command in a process group of its own, its output in a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.log = log
        self.handle = log.open("w")
        self.process = subprocess.Popen([sys.executable, "-m", "campaign_engine.cli", *args], env=env, cwd=ROOT,
                                        stdout=self.handle, stderr=subprocess.STDOUT, start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, ready: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"{what}: the process exited {self.process.returncode}:\n{self.text()}")
            time.sleep(0.05)
        raise AssertionError(f"{what}: not after {timeout} s:\n{self.text()}")

    def stop(self) -> None:
        """SIGTERM to the whole group (gunicorn's master and workers, Celery's pool), SIGKILL after 20 s;
        anything of the group still alive after its leader is gone is killed too."""
        try:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(timeout=20)
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        finally:
            self.handle.close()


@pytest.fixture
def processes():
    """Start `campaign-engine` processes; every one is stopped when the test ends, whatever happened."""
    started: list[Process] = []

    def start(args: list[str], env: dict[str, str], log: Path) -> Process:
        process = Process(args, env, log)
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in reversed(started):
            process.stop()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """One `campaign-engine` command, run to its end."""
    return subprocess.run([sys.executable, "-m", "campaign_engine.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, str]:
    """An empty rule folder and template folder of the test's own (what runs is what is published)."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "templates").mkdir()
    return {"rules_dir": str(tmp_path / "rules"), "templates_dir": str(tmp_path / "templates")}


# --------------------------------------------------------------------------- 1. two gunicorn workers

ACCESS = re.compile(r'^<(\d+)> "\w+ [^"]*[?&]probe=(\d+)')


@dataclass
class Response:
    status_code: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def http(method: str, url: str, *, headers: dict[str, str], body: bytes | None = None) -> Response:
    """One request on a connection of its own (urllib sends `Connection: close`)."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return Response(resp.status, resp.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        with exc:
            return Response(exc.code, exc.read().decode("utf-8"))


class Server:
    """`campaign-engine serve --no-scheduler` on a free port; its access log names each answer's worker."""

    def __init__(self, start: Callable[..., Process], env: dict[str, str], log: Path, workers: int):
        self.url = f"http://127.0.0.1:{free_port()}"
        env = {**env, "GUNICORN_CMD_ARGS": "--no-control-socket --access-logformat '%(p)s \"%(r)s\" %(s)s'"}
        self.process = start(["serve", "--bind", self.url[len("http://"):], "--workers", str(workers),
                              "--no-scheduler"], env, log)
        self.process.wait_for(self._up, "gunicorn answering /healthz")
        self.process.wait_for(lambda: len(self.worker_pids()) == workers, f"{workers} gunicorn workers booted")
        self._probes = itertools.count(1)
        self._lock = threading.Lock()

    def _up(self) -> bool:
        try:
            return http("GET", self.url + "/healthz", headers={}).status_code == 200
        except OSError:
            return False

    def worker_pids(self) -> set[int]:
        return {int(p) for p in re.findall(r"Booting worker with pid: (\d+)", self.process.text())}

    def call(self, method: str, path: str, key: str | None, *, payload: Any = None, data: bytes | None = None,
             headers: dict[str, str] | None = None, params: dict[str, str] | None = None) -> tuple[int, Response]:
        """One request on a connection of its own, tagged with a probe number."""
        with self._lock:
            probe = next(self._probes)
        headers = {**(headers or {})}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if payload is not None:
            data = json.dumps(payload).encode("utf-8")
            headers["Content-Type"] = "application/json"
        elif method == "POST" and data is None:
            data = b""
        query = urllib.parse.urlencode({**(params or {}), "probe": str(probe)})
        return probe, http(method, f"{self.url}{path}?{query}", headers=headers, body=data)

    def pids(self, probes: list[int], timeout: float = 5) -> dict[int, int]:
        """probe -> pid of the gunicorn worker that answered it (gunicorn logs a request once answered)."""
        deadline = time.monotonic() + timeout
        while True:
            found = {int(m.group(2)): int(m.group(1))
                     for m in map(ACCESS.match, self.process.text().splitlines()) if m}
            if all(p in found for p in probes) or time.monotonic() > deadline:
                missing = [p for p in probes if p not in found]
                assert not missing, f"probes {missing[:10]} not in the access log:\n{self.process.text()[-3000:]}"
                return {p: found[p] for p in probes}
            time.sleep(0.05)


@dataclass
class Look:
    """What one GET /rules and one preview answered, and when (seconds after the reference moment)."""

    sent: float
    answered: float
    listed: tuple[Any, ...]  # (version, name) of promo in GET /api/v1/rules
    previewed: tuple[Any, ...]  # (matched, the set of body markers and names) of its preview
    probes: tuple[int, int]


NAME1, NAME2 = "春季专享v1", "春季专享v2"
V1_SOURCE, V2_SOURCE = promo_yaml(NAME1, "gold"), promo_yaml(NAME2, "gold, platinum")
BROKEN = promo_yaml("broken v3", "gold", field="customer.tierz")  # an unknown field on line 7
TIERS = ["gold", "gold", "gold", "platinum", "platinum", "regular"]  # v1 matches 3, v2 matches 5
SEEN_AS = {"v1": ((1, NAME1), (3, (("V1", NAME1),))), "v2": ((2, NAME2), (5, (("V1", NAME2),)))}


def look(server: Server, key: str, t0: float) -> Look:
    sent = time.monotonic() - t0
    p1, listed = server.call("GET", "/api/v1/rules", key)
    p2, previewed = server.call("POST", "/api/v1/rules/promo/preview", key, payload={"date": TODAY.isoformat(),
                                                                                 "sample": 20})
    assert listed.status_code == 200, listed.text
    assert previewed.status_code == 200, previewed.text
    rule = next(item for item in listed.json()["items"] if item["id"] == "promo")
    body = previewed.json()
    # a sample's SMS is "<marker> <rule name>" (with the signature): which version rendered it
    markers = tuple(sorted({(m.group(1), m.group(2)) for s in body["sample"]
                            for m in [re.search(r"(V\d) (春季专享v\d)", s.get("body") or "")] if m}))
    return Look(sent, time.monotonic() - t0, (rule["version"], rule["name"]), (body["counts"]["matched"], markers),
                (p1, p2))


def version_of(item: Look) -> tuple[str | None, str | None]:
    """Which version the list and the preview answered from (None: neither v1 nor v2)."""
    listed = next((v for v, (want, _) in SEEN_AS.items() if item.listed == want), None)
    previewed = next((v for v, (_, want) in SEEN_AS.items() if item.previewed == want), None)
    return listed, previewed


def looks(server: Server, key: str, t0: float, n: int) -> list[Look]:
    """`n` looks, two at a time: two clients keep both workers busy, so both answer."""
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda _: look(server, key, t0), range(n)))


def by_worker(server: Server, items: list[Look]) -> dict[int, list[tuple[Look, str, str | None]]]:
    """pid -> [(look, endpoint, version answered)] for every request of `items`."""
    pids = server.pids([p for item in items for p in item.probes])
    out: dict[int, list[tuple[Look, str, str | None]]] = {}
    for item in items:
        listed, previewed = version_of(item)
        out.setdefault(pids[item.probes[0]], []).append((item, "list", listed))
        out.setdefault(pids[item.probes[1]], []).append((item, "preview", previewed))
    return out


def test_two_gunicorn_workers_answer_from_the_approved_version_within_2s(settings, engine, folders, tmp_path,
                                                                         processes):
    env = process_env({"database_url": settings.database_url, **folders, "approval": "required"})
    add_customers(engine, TIERS)
    alice = cli(env, "apikey", "create", "--role", "marketer", "--name", "alice")
    bob = cli(env, "apikey", "create", "--role", "approver", "--name", "bob")
    assert alice.returncode == bob.returncode == 0, alice.stderr + bob.stderr
    alice_key, bob_key = alice.stdout.strip(), bob.stdout.strip()

    started = time.monotonic()
    server = Server(processes, env, tmp_path / "serve.log", workers=2)
    startup = time.monotonic() - started
    workers = server.worker_pids()

    # v1: submitted by alice (JSON, with its templates), approved by bob
    _, resp = server.call("POST", "/api/v1/rules/drafts", alice_key, payload={
        "file": "promo.yaml", "source": V1_SOURCE, "templates": templates("promo", "V1"), "note": "spring offer"})
    assert resp.status_code == 201 and resp.json()["status"] == "pending", resp.text
    draft = resp.json()["id"]
    _, resp = server.call("POST", f"/api/v1/rules/drafts/{draft}/approve", alice_key)
    assert resp.status_code == 403, resp.text  # alice's key may not approve
    _, resp = server.call("POST", f"/api/v1/rules/drafts/{draft}/approve", bob_key)
    assert resp.status_code == 200 and resp.json()["status"] == "live", resp.text

    # both workers have built v1 and answer from it
    t_v1 = time.monotonic()
    warm: list[Look] = []
    while set(by_worker(server, warm)) != workers:
        assert time.monotonic() - t_v1 < 15, f"not both workers answered: {by_worker(server, warm).keys()}"
        warm += looks(server, alice_key, t_v1, 4)
    assert {version_of(item) for item in warm} == {("v1", "v1")}, warm

    # v2: the rule file alone (YAML body: its templates stay the live ones), another name and audience
    _, resp = server.call("POST", "/api/v1/rules/drafts", alice_key, data=V2_SOURCE.encode(),
                          headers={"Content-Type": "application/yaml"},
                          params={"file": "promo.yaml", "note": "platinum customers too, new name"})
    assert resp.status_code == 201 and resp.json()["status"] == "pending", resp.text
    assert resp.json()["changes"][0]["base_version"] == 1
    draft = resp.json()["id"]
    _, resp = server.call("POST", f"/api/v1/rules/drafts/{draft}/approve", bob_key)
    assert resp.status_code == 200 and resp.json()["status"] == "live", resp.text
    t0 = time.monotonic()  # the approval has answered: v2 is committed

    # within 2 s every worker answers from v2, list and preview alike
    first: list[Look] = []
    while True:
        first += looks(server, alice_key, t0, 2)
        seen = by_worker(server, first)
        switched = {pid for pid, answers in seen.items()
                    if {e for _, e, v in answers if v == "v2"} == {"list", "preview"}}
        if switched == workers or time.monotonic() - t0 > 2:
            break
    first_v2 = {pid: min(item.answered for item, _, v in answers if v == "v2")
                for pid, answers in seen.items() if any(v == "v2" for _, _, v in answers)}
    stale = [(pid, e, v, round(item.sent, 3)) for pid, answers in seen.items() for item, e, v in answers
             if v != "v2"]
    print(f"\nserve startup {startup:.2f} s; after the approval answered, first v2 answer per worker (s): "
          + ", ".join(f"{pid}: {at:.3f}" for pid, at in sorted(first_v2.items()))
          + f"; {len(first)} looks in {max(i.answered for i in first):.3f} s, {len(stale)} not v2")
    assert switched == workers and max(first_v2.values()) < 2, (first_v2, stale)
    assert not stale, f"answers from another version than v2 after its approval had answered: {stale}"

    # then 50 looks (100 requests, each on a new connection), every one from v2, from both workers
    steady = looks(server, alice_key, t0, 50)
    seen = by_worker(server, steady)
    assert set(seen) == workers, f"answered by {set(seen)}, workers {workers}"
    assert all(v == "v2" for answers in seen.values() for _, _, v in answers), \
        [(pid, e, v) for pid, answers in seen.items() for _, e, v in answers if v != "v2"]
    print("50 looks after v2, requests per worker: "
          + ", ".join(f"{pid}: {len(a)}" for pid, a in sorted(seen.items())))
    _, resp = server.call("GET", "/api/v1/rules", alice_key)
    [item] = resp.json()["items"]
    assert (item["version"], item["name"], item["status"]) == (2, NAME2, "live")
    assert item["author"].startswith("key:alice#") and item["approver"].startswith("key:bob#")
    generation = resp.json()["generation"]

    # a broken v3 is stored invalid with where its problem is; every worker keeps serving v2
    _, resp = server.call("POST", "/api/v1/rules/drafts", alice_key, data=BROKEN.encode(),
                          headers={"Content-Type": "application/yaml"}, params={"file": "promo.yaml",
                                                                                  "note": "typo on purpose"})
    assert resp.status_code == 201, resp.text
    broken = resp.json()
    assert broken["status"] == "invalid", broken
    assert [(p["file"], p["line"], p["field"]) for p in broken["problems"]] == [
        ("promo.yaml", 7, "conditions.customer.tierz")], broken["problems"]
    assert "unknown field" in broken["problems"][0]["reason"]
    after = looks(server, alice_key, t0, 20)
    seen = by_worker(server, after)
    assert set(seen) == workers and all(v == "v2" for a in seen.values() for _, _, v in a), seen
    _, resp = server.call("GET", "/api/v1/rules", alice_key)
    assert resp.json()["generation"] == generation and resp.json()["pending_drafts"] == 0

    # reloading is gone
    _, resp = server.call("POST", "/api/v1/rules/reload", alice_key)
    assert resp.status_code == 410, resp.text
    assert "published" in resp.text


# --------------------------------------------------------------------------- 2. Celery workers

@pytest.fixture
def cluster(settings, engine, folders, tmp_path, processes):
    """Settings and an environment with a Redis broker on a queue of this test's own, shards of 2
    customers, and a way to start `campaign-engine worker` processes on it. The workers do not
    deliver (delivery_tasks 0: Redis's delivery slots are shared by every test session): what is
    checked is what the runs wrote."""
    queue = f"ce-publish-{uuid.uuid4().hex[:12]}"
    values = {"database_url": settings.database_url, **folders, "approval": "required",
              "celery_broker_url": REDIS_URL, "celery_queue": queue, "celery_visibility_timeout": "30",
              "shard_size": "2", "delivery_tasks": "0", "quiet_hours": "{}", "send_rates": "{}"}
    env = process_env(values)
    cluster_settings = settings.replace(rules_dir=Path(folders["rules_dir"]),
                                        templates_dir=Path(folders["templates_dir"]),
                                        celery_broker_url=REDIS_URL, celery_queue=queue,
                                        celery_visibility_timeout=30, shard_size=2, delivery_tasks=0,
                                        quiet_hours={}, send_rates={})
    count = itertools.count()

    def start_workers(n: int) -> list[Process]:
        workers = [processes(["worker", "--concurrency=1"], env, tmp_path / f"worker{next(count)}.log")
                   for _ in range(n)]
        for worker in workers:
            worker.wait_for(lambda w=worker: " ready." in w.text(), "celery worker ready")
        return workers

    yield cluster_settings, env, start_workers
    import redis

    redis.Redis.from_url(REDIS_URL).delete(queue)


def publish(runtime: Runtime, file: str, source: str, texts: dict[str, str], note: str) -> dict[str, Any]:
    """Submit as alice, approve as bob (in this process); the runtime follows the new set."""
    services = runtime.services
    draft = publishing.submit(services, publishing.Submission(file, source, texts, note, "key:alice#1"),
                              now=utc_now())
    assert draft["status"] == "pending", draft
    live = publishing.approve(services, draft["id"], actor="key:bob#2", now=utc_now())
    assert live["status"] == "live", live
    assert runtime.refresh()
    return live


def shard_states(engine: Any, run_id: int) -> list[tuple[str, str | None]]:
    with engine.connect() as conn:
        return list(conn.execute(select(RunShard.status, RunShard.worker).where(RunShard.run_id == run_id)
                                 .order_by(RunShard.shard_no)).all())


def markers(rows: list[Message]) -> set[tuple[int | None, str]]:
    """(rule_version, the version marker its body was rendered with) of each message."""
    return {(m.rule_version, ",".join(re.findall(r"\bV\d\b", m.body or ""))) for m in rows}


@needs_redis
def test_celery_workers_run_the_versions_a_run_recorded_and_skip_a_rule_disabled_while_queued(
        settings, engine, cluster):
    cluster_settings, env, start_workers = cluster
    add_customers(engine, ["gold"] * 10)  # 5 shards of 2 customers
    runtime = Runtime(open_services(cluster_settings))
    try:
        publish(runtime, "promo.yaml", promo_yaml(NAME1, "gold"), templates("promo", "V1"), "v1")
        publish(runtime, "stopme.yaml", promo_yaml("停用测试", "gold", rule_id="stopme", template="stopme"),
                templates("stopme", "S1"), "to be stopped")

        # run A of promo v1, recorded by the CLI (--no-wait: no worker is running yet)
        out = cli(env, "run", "--rule", "promo", "--date", TODAY.isoformat(), "--no-wait", "--json")
        assert out.returncode == 0, out.stdout + out.stderr
        run_a = json.loads(out.stdout)
        assert (run_a["status"], run_a["shards"]["total"], run_a["shards"]["pending"]) == ("running", 5, 5), run_a

        # v2 published while every shard of A waits in the queue
        publish(runtime, "promo.yaml", promo_yaml(NAME2, "gold"), templates("promo", "V2"), "v2")
        assert {s for s, _ in shard_states(engine, run_a["run_id"])} == {"pending"}
        services = runtime.services
        run_b = start_run(services, ScheduledRunRequest(TODAY + dt.timedelta(days=1), ("promo",)),
                          now=utc_now(), wait=False)
        run_c = start_run(services, ScheduledRunRequest(TODAY, ("stopme",)), now=utc_now(), wait=False)
        stopped = cli(env, "rules", "disable", "stopme", "--reason", "wrong audience", "--as", "carol")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        with engine.connect() as conn:
            recorded = dict(conn.execute(select(CampaignRun.id, CampaignRun.rule_versions)).all())
        assert recorded[run_a["run_id"]]["promo"]["version"] == 1
        assert recorded[run_b.run_id]["promo"]["version"] == 2

        started = time.monotonic()
        start_workers(2)
        ready = time.monotonic() - started
        reports = {run: wait_for_run(services, run, timeout=60).as_dict()
                   for run in (run_a["run_id"], run_b.run_id, run_c.run_id)}
        executed = time.monotonic() - started - ready

        # the workers now hold v2 as their live set: v3, published now, is what a new run carries
        publish(runtime, "promo.yaml", promo_yaml(NAME1, "gold"), templates("promo", "V3"), "v3")
        run_d = start_run(runtime.services, ScheduledRunRequest(TODAY + dt.timedelta(days=2), ("promo",)),
                          now=utc_now(), wait=False)
        reports[run_d.run_id] = wait_for_run(runtime.services, run_d.run_id, timeout=60).as_dict()
    finally:
        runtime.close()
    executors = {w for run in reports for _, w in shard_states(engine, run)}
    print(f"\nworkers ready in {ready:.2f} s; runs A, B, C executed {executed:.2f} s after that; "
          f"the 20 shards of A-D by {len(executors)} worker process(es)")

    for run_id, report in reports.items():
        assert report["status"] == "completed" and report["shards"]["completed"] == 5, report
    a, b, c, d = (messages_of(engine, r) for r in (run_a["run_id"], run_b.run_id, run_c.run_id, run_d.run_id))
    # A ran v1 on every shard, though v2 was live before any shard of it started
    assert len(a) == 10 and markers(a) == {(1, "V1")}, markers(a)
    assert all(NAME1 in (m.body or "") for m in a)
    assert len(b) == 10 and markers(b) == {(2, "V2")} and all(NAME2 in (m.body or "") for m in b)
    assert len(d) == 10 and markers(d) == {(3, "V3")}
    # C: recorded before the stop, executed after it: every shard skipped the rule, nothing written
    [rule_c] = reports[run_c.run_id]["rules"]
    assert rule_c["skipped"].startswith("disabled by cli:carol: wrong audience"), rule_c
    assert (rule_c["matched"], rule_c["queued"]) == (0, 0) and c == []


# --------------------------------------------------------------------------- 3. the scheduler process

def test_scheduler_process_reschedules_within_2s_of_a_publish(settings, engine, folders, tmp_path, processes):
    env = process_env({"database_url": settings.database_url, **folders, "approval": "required"})
    scheduler = processes(["-v", "scheduler"], env, tmp_path / "scheduler.log")
    scheduler.wait_for(lambda: re.search(r"scheduler \S+ started: 0 scheduled", scheduler.text()) is not None,
                       "scheduler started", timeout=30)
    runtime = Runtime(open_services(settings.replace(rules_dir=Path(folders["rules_dir"]),
                                                     templates_dir=Path(folders["templates_dir"]))))

    def next_run(rule_id: str, until: Callable[[Any], bool]) -> tuple[float, Any]:
        """Seconds until the shared job store (what GET /api/v1/rules reads as next_run) has the
        rule's job as `until` wants it ("absent": no job), and that job's next run time."""
        t0 = time.monotonic()
        while True:
            with engine.connect() as conn:
                jobs = scheduler_jobs.next_run_times(conn)
            if until(jobs.get(rule_id, "absent")):
                return time.monotonic() - t0, jobs.get(rule_id, "absent")
            assert time.monotonic() - t0 < 5, f"{rule_id}: {jobs}\n{scheduler.text()}"
            time.sleep(0.02)

    tz = settings.tz
    try:
        publish(runtime, "nightly.yaml", promo_yaml("夜间", "gold", rule_id="nightly", template="nightly"),
                templates("nightly", "N1"), "new scheduled rule")
        added, at = next_run("nightly", lambda t: isinstance(t, dt.datetime))
        assert at.astimezone(tz).time() == dt.time(9, 0), at
        publish(runtime, "nightly.yaml", promo_yaml("夜间", "gold", rule_id="nightly", template="nightly",
                                                    schedule="30 22 * * *"), templates("nightly", "N1"), "later")
        moved, at = next_run("nightly", lambda t: isinstance(t, dt.datetime) and t.astimezone(tz).minute == 30)
        assert at.astimezone(tz).time() == dt.time(22, 30), at
        publishing.disable(runtime.services, "nightly", actor="cli:carol", reason="stop it", now=utc_now())
        removed, _ = next_run("nightly", lambda t: t == "absent")
    finally:
        runtime.close()
    print(f"\nscheduler: job added {added:.3f} s, moved {moved:.3f} s, removed {removed:.3f} s after the change")
    assert max(added, moved, removed) < 2
    assert "Traceback" not in scheduler.text(), scheduler.text()
