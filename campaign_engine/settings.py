"""Settings: defaults in config/ < the file named by CAMPAIGN_ENGINE_CONFIG < CAMPAIGN_ENGINE_* env.

Loaded once by each entry point and passed down as a frozen value; nothing here
runs at import time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ruamel.yaml import YAML, YAMLError

from .errors import ConfigError, Problem
from .masking import ContactData
from .policy.caps import Cap
from .policy.quiet_hours import Window
from .vocabulary import Approval

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULTS_FILE = PROJECT_ROOT / "config" / "campaign_engine.yaml"
ENV_PREFIX = "CAMPAIGN_ENGINE_"
# config/campaign_engine.yaml's secret_key: fine for a demo, never for a bank (`serve` warns)
DEV_SECRET_KEY = "dev-secret-change-me"


@dataclass(frozen=True)
class ControlGroup:
    """`control_group: {percent, salt}`: customers no marketing rule contacts (issue #11).

    Assignment is effect.assignment's bucket of the customer id under `hash_salt`, the salt behind
    the prefix `control_group:` that no rule's holdout salt may have (rulebook.loader), so the
    control group is independent of every rule's holdout.
    """

    percent: float
    salt: str

    @property
    def hash_salt(self) -> str:
        return f"control_group:{self.salt}"


@dataclass(frozen=True)
class TaskSettings:
    """`tasks:` how relationship-manager tasks (call 电联, visit 面谈) are scheduled (issue #12)."""

    hour: dt.time = dt.time(10, 0)  # a task is due at this local time on its business day
    urgent_priority: int = 90  # a rule of at least this priority plans the task for today
    horizon_days: int = 3  # the business days (the first included) a task may be planned on before the next channel
    sla_hours: int = 24  # an open task this long past due is overdue (listed for the branch supervisor)
    expire_days: int = 14  # an open task this many days past due expires
    window: Window = Window(dt.time(9, 0), dt.time(18, 0))  # the customer's contact window for calls
    digest_hour: dt.time = dt.time(8, 30)  # each manager's daily digest email
    caps: Mapping[str, tuple[Cap, ...]] = dataclasses.field(
        default_factory=lambda: {"call": (Cap(days=7, max=1),), "visit": ()})  # marketing tasks per customer


@dataclass(frozen=True)
class Settings:
    database_url: str
    rules_dir: Path
    templates_dir: Path
    holidays_file: Path
    timezone: str
    sms_signature: str
    sms_opt_out: str
    batch_size: int
    preview_sample: int
    api_rate_limit: int
    channels: Mapping[str, Mapping[str, Any]]
    frequency_caps: tuple[Cap, ...]
    quiet_hours: Mapping[str, Window]
    webhooks: Mapping[str, Mapping[str, Any]]
    send_rates: Mapping[str, float]
    opt_out_keywords: tuple[str, ...]
    secret_key: str
    public_base_url: str
    shard_size: int
    celery_broker_url: str | None
    celery_queue: str
    celery_visibility_timeout: int
    delivery_tasks: int
    redis_url: str | None
    delivery_lease: int
    delivery_heartbeat: int
    cli_contact_data: ContactData  # how `campaign-engine messages` prints recipients
    control_group: ControlGroup | None  # the global control group of marketing rules; None: none
    approval: Approval  # whether a rule change needs someone other than its author to approve it
    tasks: TaskSettings
    phone_consent_default: bool  # phone-marketing consent of a customer with none recorded
    log_format: str = "text"  # text, or json: one object per line with run/rule/message ids
    metrics_token: str | None = None  # GET /metrics needs `Authorization: Bearer <token>`; None: open
    metrics_port: int | None = None  # where `send` and `worker` serve their own /metrics; None: nowhere
    trusted_proxies: int = 0  # reverse proxies in front of `serve` whose X-Forwarded-For/-Proto are believed

    @property
    def distributed(self) -> bool:
        """Runs and delivery go to Celery workers (else they execute in the calling process)."""
        return bool(self.celery_broker_url)

    @property
    def rate_limit_url(self) -> str | None:
        """Where send rates are shared between workers: redis_url, else a Redis broker."""
        if self.redis_url:
            return self.redis_url
        broker = self.celery_broker_url or ""
        return broker if broker.startswith(("redis://", "rediss://")) else None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)


_PATH_KEYS = {"rules_dir", "templates_dir", "holidays_file"}
_INT_KEYS = {"batch_size", "preview_sample", "api_rate_limit", "shard_size", "celery_visibility_timeout",
             "delivery_tasks", "delivery_lease", "delivery_heartbeat", "trusted_proxies"}
_MAY_BE_ZERO = {"api_rate_limit", "delivery_tasks", "trusted_proxies"}
_JSON_KEYS = ("channels", "webhooks", "send_rates", "frequency_caps", "quiet_hours", "control_group", "tasks")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = YAML(typ="safe").load(path.read_text(encoding="utf-8-sig"))
    except (OSError, YAMLError) as exc:
        raise ConfigError([Problem(str(exc), file=str(path))], what="settings") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([Problem("expected a mapping of settings", file=str(path))], what="settings")
    return data


def _caps(raw: Any, source: str | None, problems: list[Problem]) -> tuple[Cap, ...]:
    try:
        caps = tuple(Cap(days=int(c["days"]), max=int(c["max"])) for c in raw or [])
        if all(c.days >= 1 and c.max >= 0 for c in caps):
            return caps
    except (TypeError, KeyError, ValueError):
        pass
    problems.append(Problem("a list of {days: N >= 1, max: M >= 0}", file=source, field="frequency_caps"))
    return ()


def _windows(raw: Any, source: str | None, problems: list[Problem]) -> dict[str, Window]:
    try:
        windows = {str(ch): Window(dt.time.fromisoformat(str(w["start"])), dt.time.fromisoformat(str(w["end"])))
                   for ch, w in (raw or {}).items()}
        if all(w.start != w.end for w in windows.values()):
            return windows
    except (TypeError, KeyError, ValueError, AttributeError):
        pass
    problems.append(Problem("channel: {start: 'HH:MM', end: 'HH:MM'} with start != end", file=source,
                            field="quiet_hours"))
    return {}


_TASK_KEYS = {"hour", "urgent_priority", "horizon_days", "sla_hours", "expire_days", "window", "digest_hour", "caps"}


def _tasks(raw: Any, source: str | None, problems: list[Problem]) -> TaskSettings:
    """`tasks:` as TaskSettings; each bad key is a problem naming it (`tasks.hour`)."""
    default = TaskSettings()
    if raw is None:
        return default
    if not isinstance(raw, Mapping):
        problems.append(Problem("a mapping of " + ", ".join(sorted(_TASK_KEYS)), file=source, field="tasks"))
        return default
    values: dict[str, Any] = {}
    for key in raw:
        if key not in _TASK_KEYS:
            problems.append(Problem(f"unknown key (one of {', '.join(sorted(_TASK_KEYS))})", file=source,
                                    field=f"tasks.{key}"))
    try:
        for key in ("hour", "digest_hour"):
            if key in raw:
                values[key] = dt.time.fromisoformat(str(raw[key]))
        for key, low in (("urgent_priority", 0), ("horizon_days", 1), ("sla_hours", 1), ("expire_days", 1)):
            if key in raw:
                values[key] = int(raw[key])
                if values[key] < low:
                    raise ValueError(key)
        if "window" in raw:
            window = Window(dt.time.fromisoformat(str(raw["window"]["start"])),
                            dt.time.fromisoformat(str(raw["window"]["end"])))
            if not window.start < window.end:
                raise ValueError("window")
            values["window"] = window
        if "caps" in raw:
            caps: dict[str, tuple[Cap, ...]] = {}
            for channel, entries in dict(raw["caps"]).items():
                if channel not in ("call", "visit"):
                    raise ValueError("caps")
                caps[str(channel)] = tuple(Cap(days=int(c["days"]), max=int(c["max"])) for c in entries or [])
            values["caps"] = {**default.caps, **caps}
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        problems.append(Problem("hour/digest_hour 'HH:MM'; urgent_priority >= 0; horizon_days, sla_hours, "
                                "expire_days >= 1; window {start, end} within a day; caps {call|visit: "
                                f"[{{days, max}}]}} ({exc})", file=source, field="tasks"))
        return default
    tasks = dataclasses.replace(default, **values)
    if not tasks.window.contains(tasks.hour):  # a task is due inside the customer's call window
        start, end = f"{tasks.window.start:%H:%M}", f"{tasks.window.end:%H:%M}"
        problems.append(Problem(
            f"tasks.hour {tasks.hour:%H:%M} is outside the call window tasks.window {start}-{end}: a task would be "
            f"due when the customer is not to be called; set an hour from {start} to before {end}, or widen "
            "tasks.window", file=source, field="tasks.hour"))
    return tasks


def _control_group(raw: Any, source: str | None, problems: list[Problem]) -> ControlGroup | None:
    """None, {} or percent 0: no control group; else percent 0..50 in steps of 0.01 and a salt."""
    from .effect.assignment import holdout_slots

    if raw is None or raw == {}:
        return None
    try:
        percent = float(raw.get("percent", 0))
        salt = str(raw.get("salt") or "default")
        if set(raw) <= {"percent", "salt"} and 0 <= percent <= 50 and "\0" not in salt:
            holdout_slots(percent)
            return ControlGroup(percent, salt) if percent > 0 else None
    except (TypeError, ValueError, AttributeError):
        pass
    problems.append(Problem("{percent: 0..50 (steps of 0.01; 0: none), salt: text}", file=source,
                            field="control_group"))
    return None


def _resolve_sqlite_path(url: str, root: Path) -> str:
    """Make a relative SQLite file path absolute and make sure its folder exists."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == "sqlite:///:memory:":
        return url
    path = Path(url[len(prefix):])
    if not path.is_absolute():
        path = root / path
    path.parent.mkdir(parents=True, exist_ok=True)
    return prefix + str(path)


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from the defaults file, the override file and the environment."""
    env = os.environ if env is None else env
    values: dict[str, Any] = _read_yaml(DEFAULTS_FILE)
    sources = {key: str(DEFAULTS_FILE) for key in values}
    override_file = env.get(ENV_PREFIX + "CONFIG")
    if override_file:
        for key, value in _read_yaml(Path(override_file)).items():
            values[key] = value
            sources[key] = override_file
    fields = {f.name for f in dataclasses.fields(Settings)}
    for key in fields:
        env_value = env.get(ENV_PREFIX + key.upper())
        if env_value is not None:
            values[key] = env_value
            sources[key] = ENV_PREFIX + key.upper()
    values.update({k: v for k, v in overrides.items() if v is not None})

    problems = [Problem(f"unknown setting {key!r}", file=sources.get(key), field=key)
                for key in values if key not in fields]
    problems += [Problem("missing setting", field=key) for key in fields if key not in values]
    if problems:
        raise ConfigError(problems, what="settings")
    for key in _INT_KEYS:
        try:
            values[key] = int(values[key])
            if values[key] < (0 if key in _MAY_BE_ZERO else 1):
                raise ValueError
        except (TypeError, ValueError):
            problems.append(Problem("must be a whole number" + ("" if key in _MAY_BE_ZERO else " above 0"),
                                    file=sources.get(key), field=key))
    if (not {p.field for p in problems} & {"delivery_lease", "delivery_heartbeat"}
            and values["delivery_heartbeat"] * 3 > values["delivery_lease"]):
        problems.append(Problem("at most a third of delivery_lease", file=sources.get("delivery_heartbeat"),
                                field="delivery_heartbeat"))
    for key in _PATH_KEYS:
        path = Path(str(values[key]))
        values[key] = path if path.is_absolute() else PROJECT_ROOT / path
    for key in _JSON_KEYS:  # structured settings given in the environment are JSON
        if isinstance(values[key], str):
            try:
                values[key] = json.loads(values[key])
            except json.JSONDecodeError as exc:
                problems.append(Problem(f"not JSON: {exc.msg}", file=sources.get(key), field=key))
                values[key] = None
    channels = values["channels"]
    if not isinstance(channels, Mapping) or not all(
            isinstance(v, Mapping) and isinstance(v.get("type"), str) for v in channels.values()):
        problems.append(Problem("channels maps sms/email to {type: ..., options}", file=sources.get("channels"),
                                field="channels"))
    if not isinstance(values["webhooks"], Mapping) or not all(
            isinstance(w, Mapping) and isinstance(w.get("secret"), str) and w["secret"]
            for w in values["webhooks"].values()):
        problems.append(Problem("webhooks maps a provider to {secret, signature_header, receipt, reply}",
                                file=sources.get("webhooks"), field="webhooks"))
    try:
        values["send_rates"] = {str(k): float(v) for k, v in (values["send_rates"] or {}).items()}
        if any(v < 0 for v in values["send_rates"].values()):
            raise ValueError
    except (TypeError, ValueError, AttributeError):
        problems.append(Problem("channel: messages per second (0: unlimited)", file=sources.get("send_rates"),
                                field="send_rates"))
    keywords = values["opt_out_keywords"]
    if isinstance(keywords, str):
        keywords = [k for k in keywords.split(",")]
    values["opt_out_keywords"] = tuple(str(k).strip().upper() for k in keywords if str(k).strip())
    values["public_base_url"] = str(values["public_base_url"]).rstrip("/")
    values["secret_key"] = str(values["secret_key"])
    for key in ("celery_broker_url", "redis_url"):  # empty: not configured
        values[key] = str(values[key]).strip() or None if values[key] is not None else None
    values["celery_queue"] = str(values["celery_queue"])
    values["frequency_caps"] = _caps(values["frequency_caps"], sources.get("frequency_caps"), problems)
    values["quiet_hours"] = _windows(values["quiet_hours"], sources.get("quiet_hours"), problems)
    values["control_group"] = _control_group(values["control_group"], sources.get("control_group"), problems)
    values["tasks"] = _tasks(values["tasks"], sources.get("tasks"), problems)
    raw_default = str(values["phone_consent_default"]).strip().lower()
    if raw_default not in ("true", "false"):
        problems.append(Problem("true or false", file=sources.get("phone_consent_default"),
                                field="phone_consent_default"))
    values["phone_consent_default"] = raw_default == "true"
    try:
        values["approval"] = Approval(str(values["approval"]).strip().lower())
    except ValueError:
        problems.append(Problem("required or off", file=sources.get("approval"), field="approval"))
    try:
        values["cli_contact_data"] = ContactData(str(values["cli_contact_data"]).strip().lower())
    except ValueError:
        problems.append(Problem("full or masked", file=sources.get("cli_contact_data"), field="cli_contact_data"))
    for key in ("metrics_token", "metrics_port"):
        if values.get(key) in ("", "null", "none"):
            values[key] = None
    if values.get("metrics_port") is not None:
        try:
            values["metrics_port"] = int(values["metrics_port"])
            if not 1 <= values["metrics_port"] <= 65535:
                raise ValueError
        except (TypeError, ValueError):
            problems.append(Problem("a TCP port (1-65535) or null", file=sources.get("metrics_port"),
                                    field="metrics_port"))
    if values.get("metrics_token") is not None:
        values["metrics_token"] = str(values["metrics_token"])
    values["log_format"] = str(values.get("log_format", "text")).strip().lower()
    if values["log_format"] not in ("text", "json"):
        problems.append(Problem("text or json", file=sources.get("log_format"), field="log_format"))
    try:
        ZoneInfo(str(values["timezone"]))
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(Problem(f"unknown time zone {values['timezone']!r}",
                                file=sources.get("timezone"), field="timezone"))
    if problems:
        raise ConfigError(problems, what="settings")
    values["database_url"] = _resolve_sqlite_path(str(values["database_url"]), PROJECT_ROOT)
    return Settings(**values)
