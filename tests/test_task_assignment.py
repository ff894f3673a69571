"""Who works a task besides the manager it was planned for: a manager made inactive hands their open
tasks to the branch queues (PUT /managers, the managers import), and a queue task is assigned to a
manager (POST /tasks/{id}/assign, `tasks assign`) or claimed by a manager of its branch."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from campaign_engine.api import create_app
from campaign_engine.imports import COLUMNS
from campaign_engine.store import apikeys
from campaign_engine.store.models import AuditEntry, ManagerLoad, Task
from campaign_engine.vocabulary import EventType
from factories import NOW, fire_event, world_cli
from test_manager_tasks import calls, large_move, local, tasks  # noqa: F401 (the fixture)
from test_tasks_worklist import TODAY_10, api, book, error, services  # noqa: F401 (fixtures)

MANAGER_BODY = {"name": "经理M1", "branch": "北京分行", "mobile": "13900000000", "email": "m1@bank.example",
                "daily_call_capacity": 25, "daily_visit_capacity": 5, "active": True}


def audit(engine: Any, action: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(AuditEntry.actor, AuditEntry.target, AuditEntry.details)
                            .where(AuditEntry.action == action).order_by(AuditEntry.id)).mappings()
        return [dict(r) for r in rows]


def load(engine: Any, owner: str) -> dict[tuple[dt.date, str], int]:
    with engine.connect() as conn:
        rows = conn.execute(select(ManagerLoad.day, ManagerLoad.type, ManagerLoad.planned)
                            .where(ManagerLoad.owner == owner))
        return {(r.day, r.type): r.planned for r in rows}


def managers_csv(path: Path, *rows: dict[str, str]) -> Path:
    lines = [",".join(COLUMNS["managers"])]
    for row in rows:
        values = {"name": "经理", "branch": "北京分行", "mobile": "13900000000", "email": "m@bank.example",
                  "daily_call_capacity": "25", "daily_visit_capacity": "5", "active": "true", **row}
        lines.append(",".join(values[c] for c in COLUMNS["managers"]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- an inactive manager's tasks

@pytest.fixture
def admin(calls, world, engine):
    """The calls world's API as an admin: (method, path, **kw) -> response."""
    app = create_app(world.settings.replace(api_rate_limit=0), clock=lambda: NOW, background_workers=1)
    with engine.begin() as conn:
        key = apikeys.create_key(conn, name="boss", role="admin", now=NOW)[1]

    def call(method: str, path: str, **kw: Any):  # type: ignore[no-untyped-def]
        return app.test_client().open(path, method=method, headers={"Authorization": f"Bearer {key}"}, **kw)

    yield call
    state = app.extensions["campaign"]
    state.wait(30)
    state.runtime.close()


def test_a_manager_made_inactive_hands_open_tasks_to_the_branch_queue_and_alerts_merge_there(calls, admin, engine):
    report = fire_event(calls, EventType.LARGE_TRANSACTION, large_move("C1", "lt-1"), now=local(2026, 3, 10, 9, 0))
    assert report["rules"][0]["tasks"] == 1
    [task] = tasks(engine)
    assert task["manager_id"] == "M1" and load(engine, "M1") == {(dt.date(2026, 3, 11), "call"): 1}

    resp = admin("PUT", "/api/v1/managers/M1", json={**MANAGER_BODY, "active": False})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert (resp.get_json()["active"], resp.get_json()["requeued_tasks"]) == (False, 1)
    [task] = tasks(engine)
    assert (task["manager_id"], task["branch"], task["status"]) == (None, "北京分行", "open")
    assert load(engine, "M1") == {(dt.date(2026, 3, 11), "call"): 0}  # the manager's day given back
    [entry] = audit(engine, "tasks.requeue")
    assert entry["target"] == f"task:{task['id']}" and entry["actor"].startswith("key:boss#")
    assert entry["details"]["from_manager"] == "M1" and entry["details"]["reason"] == "manager inactive"
    assert audit(engine, "managers.upsert")[-1]["details"]["requeued_tasks"] == 1

    again = fire_event(calls, EventType.LARGE_TRANSACTION, large_move("C1", "lt-2", amount=1200000),
                       now=local(2026, 3, 10, 11, 0))
    assert (again["rules"][0].get("tasks", 0), again["rules"][0]["merged"]) == (0, 1)
    [task] = tasks(engine)
    assert task["manager_id"] is None and task["alerts"] == 2 and "经理 队列" in task["talking_points"]
    # active again: later tasks are theirs, the queue keeps what it has (assign it back if wanted)
    assert admin("PUT", "/api/v1/managers/M1", json=MANAGER_BODY).get_json()["requeued_tasks"] == 0
    assert len(audit(engine, "tasks.requeue")) == 1


def test_the_managers_import_requeues_the_open_tasks_of_inactive_managers(book, tmp_path):
    moved = book.task("C1", "M1")
    closed = book.task("C1", "M1", status="done")
    kept = book.task("C2", "M2")
    cli = world_cli(book.world)

    result = cli("import", "managers", str(managers_csv(tmp_path / "m.csv", {"manager_id": "M1", "active": "false"})),
                 "--quiet")
    assert result.exit_code == 0, result.output
    assert "1 open task(s) of inactive managers moved to their branch queues" in result.output
    assert (book.row(moved).manager_id, book.row(moved).branch) == (None, "北京分行")
    assert book.row(closed).manager_id == "M1" and book.row(kept).manager_id == "M2"
    [entry] = audit(book.engine, "tasks.requeue")
    assert entry["target"] == f"task:{moved}" and entry["actor"].startswith("cli:")
    # a task of a manager id no longer in the managers table goes to the queue as well
    gone = book.task("C3", "GONE")
    assert "1 open task(s)" in cli("import", "managers", str(managers_csv(tmp_path / "n.csv", {"manager_id": "M3"})),
                                   "--quiet").output
    assert book.row(gone).manager_id is None


def test_the_api_managers_import_requeues_too(api, book):
    moved = book.task("C2", "M2")
    text = ",".join(COLUMNS["managers"]) + "\n" + "M2,经理M2,北京分行,13900000000,m2@bank.example,25,5,false\n"
    resp = api("POST", "/api/v1/imports/managers", "admin", data=text.encode(), content_type="text/csv")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert book.row(moved).manager_id is None
    assert audit(book.engine, "import")[-1]["details"]["requeued_tasks"] == 1


# --------------------------------------------------------------------------- assignment

def test_an_operator_assigns_a_queue_task_to_an_active_manager_audited_and_counted(api, book):
    queue = book.task("C3", None)
    resp = api("POST", f"/api/v1/tasks/{queue}/assign", "operator", json={"manager": "M1", "note": "客户点名王经理"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert (resp.get_json()["manager_id"], resp.get_json()["manager_name"]) == ("M1", "经理M1")
    assert book.row(queue).manager_id == "M1"
    assert load(book.engine, "M1") == {(dt.date(2026, 3, 10), "call"): 1}
    [entry] = audit(book.engine, "tasks.assign")
    assert entry["target"] == f"task:{queue}" and entry["details"]["from_manager"] is None
    assert (entry["details"]["to_manager"], entry["details"]["note"]) == ("M1", "客户点名王经理")
    # now M1's: on its list, and M1 may close it
    assert queue in [t["id"] for t in api("GET", "/api/v1/tasks", "m1").get_json()["items"]]
    # reassigned to M2: M1's day given back
    assert api("POST", f"/api/v1/tasks/{queue}/assign", "admin", json={"manager": "M2"}).status_code == 200
    assert load(book.engine, "M1") == {(dt.date(2026, 3, 10), "call"): 0}
    assert load(book.engine, "M2") == {(dt.date(2026, 3, 10), "call"): 1}
    assert error(api("GET", f"/api/v1/tasks/{queue}", "m1"), 404)


def test_a_manager_claims_a_queue_task_of_its_own_branch_for_itself_only(api, book):
    own_branch = book.task("C3", None)
    other_branch = book.task("C3", None, branch="上海分行")
    other_manager = book.task("C2", "M2")

    body = error(api("POST", f"/api/v1/tasks/{own_branch}/assign", "m1", json={"manager": "M2"}), 403)
    assert "for itself only" in body["message"] and book.row(own_branch).manager_id is None
    for task_id in (other_branch, other_manager, 999999):  # does not exist for this key
        error(api("POST", f"/api/v1/tasks/{task_id}/assign", "m1", json={"manager": "M1"}), 404)
    resp = api("POST", f"/api/v1/tasks/{own_branch}/assign", "m1", json={"manager": "M1"})
    assert resp.status_code == 200 and resp.get_json()["mobile"] == "13811112222"  # theirs now: they call
    assert audit(book.engine, "tasks.assign")[-1]["details"]["claimed"] is True
    # M1's now: for the branch's other manager it is another manager's task
    error(api("POST", f"/api/v1/tasks/{own_branch}/assign", "m2", json={"manager": "M2"}), 404)
    assert book.row(other_branch).manager_id is None and book.row(other_manager).manager_id == "M2"


def test_two_claims_of_one_queue_task_at_once_one_wins(book, services):
    """The assignment is one conditional UPDATE: a claim that read the task in the queue finds it taken."""
    from campaign_engine.errors import Conflict
    from campaign_engine.pipeline import tasks as worklist

    queue = book.task("C3", None)
    worklist.assign_task(services, queue, worklist.AssignRequest("M1"), worklist.Viewer("key:wang#1", "manager", "M1"),
                         now=NOW)
    with pytest.raises(Conflict, match="no longer open, or was assigned meanwhile"):
        services.store.assign_task(queue, manager_id="M2", expected=None, day=dt.date(2026, 3, 10), type_="call",
                                   capacity=25, now=NOW, audit_entries=[])
    assert book.row(queue).manager_id == "M1" and load(book.engine, "M2") == {}


def test_assignment_refusals_name_the_manager_and_the_state(api, book):
    book.manager("M030")
    book.manager("M040", active=False)
    queue = book.task("C3", None)
    done = book.task("C3", None, status="done")

    reason = error(api("POST", f"/api/v1/tasks/{queue}/assign", "operator", json={"manager": "M03O"}),
                   400)["details"]["fields"]["manager"][0]
    assert reason == "unknown manager 'M03O' (did you mean 'M030'?)"
    reason = error(api("POST", f"/api/v1/tasks/{queue}/assign", "operator", json={"manager": "M040"}),
                   400)["details"]["fields"]["manager"][0]
    assert "manager M040 is inactive" in reason
    assert "not open" in error(api("POST", f"/api/v1/tasks/{done}/assign", "operator", json={"manager": "M1"}),
                               409)["message"]
    for role in ("viewer", "marketer", "approver", "auditor"):
        assert "may not assign" in error(api("POST", f"/api/v1/tasks/{queue}/assign", role, json={"manager": "M1"}),
                                         403)["message"]
    assert "manager" in error(api("POST", f"/api/v1/tasks/{queue}/assign", "operator", json={}), 400)["details"]["fields"]
    assert book.row(queue).manager_id is None and audit(book.engine, "tasks.assign") == []


def test_a_full_due_day_refuses_the_assignment_a_past_one_is_counted_without_a_limit(api, book):
    book.manager("M9", daily_call_capacity=1)
    first, second = book.task("C3", None), book.task("C3", None)
    overdue = book.task("C3", None, due_at=TODAY_10 - dt.timedelta(days=2))
    assert api("POST", f"/api/v1/tasks/{first}/assign", "operator", json={"manager": "M9"}).status_code == 200
    message = error(api("POST", f"/api/v1/tasks/{second}/assign", "operator", json={"manager": "M9"}), 409)["message"]
    assert "M9 has no room for another call on 2026-03-10" in message
    assert book.row(second).manager_id is None  # nothing of it applied
    book.manager("M8", daily_call_capacity=0)
    assert api("POST", f"/api/v1/tasks/{overdue}/assign", "operator", json={"manager": "M8"}).status_code == 200
    assert load(book.engine, "M9") == {(dt.date(2026, 3, 10), "call"): 1}


def test_cli_assigns_and_says_a_task_id_is_a_number(book):
    cli = world_cli(book.world)
    queue = book.task("C3", None)
    result = cli("tasks", "assign", str(queue), "--manager", "M1", "--as", "alice", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["manager_id"] == "M1"
    assert audit(book.engine, "tasks.assign")[0]["actor"] == "cli:alice"
    typo = cli("tasks", "assign", str(queue), "--manager", "M7")
    assert typo.exit_code == 2 and "unknown manager 'M7'" in typo.output
    with book.engine.begin() as conn:
        conn.execute(Task.__table__.update().values(status="done"))
    assert cli("tasks", "assign", str(queue), "--manager", "M2").exit_code == 1
    for command in (("tasks", "done", "abc", "--outcome", "reached"), ("tasks", "show", "abc"),
                    ("tasks", "assign", "abc", "--manager", "M1")):
        result = cli(*command)
        assert result.exit_code == 2 and "the task id must be a number" in result.output, result.output
        assert "integer range" not in result.output
    assert cli("tasks", "show", f"#{queue}").exit_code == 0  # as `tasks list` prints it
