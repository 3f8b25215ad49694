"""Configuration: a TOML file (``recon.toml``) overridden by ``RECON_*`` environment variables.

Secrets (the Zuora client secret, database passwords) come only from the environment or the
file and are wrapped in :class:`Secret`, whose ``repr``/``str`` never reveal the value, so a
stray log line or a report cannot leak them. URLs are shown through :func:`redact_url`.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import ConfigError

DEFAULT_CONFIG_FILE = "recon.toml"


class Secret:
    """A string that refuses to be printed."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value or None

    def get(self) -> str | None:
        """The real value, for the one place that must send it (the OAuth request)."""
        return self._value

    def __bool__(self) -> bool:
        return self._value is not None

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret(None)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def redact_url(url: str) -> str:
    """``postgresql://u:pw@h/db`` → ``postgresql://u:***@h/db``; anything else unchanged."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class Settings:
    """Everything recon needs to know about its surroundings. Field names are the TOML keys."""

    zuora_base_url: str = "http://127.0.0.1:8808"
    zuora_client_id: str = "recon"
    zuora_client_secret: Secret = field(default_factory=lambda: Secret(None))
    tenant_tz: str = "America/Los_Angeles"
    local_database_url: str = "duckdb:///data/local.duckdb"
    data_dir: Path = Path("data")
    extract_mode: str = "incremental"  # what `recon extract` does when --mode is not given
    extract_full_every_days: int = 7  # …but a full export at least this often
    extract_lag_hours: float = 2.0  # incremental upper bound: now − lag
    reconcile_grace_hours: float = 2.0  # Zuora changes this recent are "pending", not drift
    validate_max_volume_drop: float = 0.2  # fraction of rows an object may lose between runs
    # fraction of an object's Zuora records that may be quarantined before the run stops
    validate_max_quarantine_share: float = 0.01
    repair_max_change_fraction: float = 0.05  # apply refuses to touch more of a table (--force)
    repair_max_plan_age_hours: float = 24.0  # apply refuses an older plan
    repair_batch_size: int = 1000  # operations per transaction
    repair_auto: bool = False  # the nightly job applies auto repairs when every guard passes
    # Zuora ids in reports link through this template ({object}, {id}); "" = no links
    report_zuora_url_template: str = "https://www.zuora.com/platform/{object}/{id}"
    report_trend_runs: int = 14  # runs shown in report trends and sparklines
    # cron expressions (minute hour day month weekday) in schedule_timezone; "" disables a job
    schedule_timezone: str = "UTC"
    schedule_nightly: str = "30 2 * * *"
    schedule_catalog: str = "0 6 * * *"
    schedule_full: str = "0 4 * * 0"
    jobs_retries: int = 2  # extra attempts after a transient failure
    jobs_retry_delay_s: float = 30.0  # first backoff; doubles per attempt
    jobs_misfire_grace_hours: float = 6.0  # a tick missed by less than this still runs (once)
    alerts_webhook_url: Secret = field(default_factory=lambda: Secret(None))  # Slack-compatible
    alerts_new_drift_threshold: int = 1  # alert when a run has at least this many new findings

    def describe(self) -> dict[str, str]:
        """A printable view with secrets masked (for ``recon config show`` and reports)."""
        return {
            "zuora_base_url": self.zuora_base_url,
            "zuora_client_id": self.zuora_client_id,
            "zuora_client_secret": "set" if self.zuora_client_secret else "not set",
            "tenant_tz": self.tenant_tz,
            "local_database_url": redact_url(self.local_database_url),
            "data_dir": str(self.data_dir),
            "extract_mode": self.extract_mode,
            "extract_full_every_days": str(self.extract_full_every_days),
            "extract_lag_hours": str(self.extract_lag_hours),
            "reconcile_grace_hours": str(self.reconcile_grace_hours),
            "validate_max_volume_drop": str(self.validate_max_volume_drop),
            "validate_max_quarantine_share": str(self.validate_max_quarantine_share),
            "repair_max_change_fraction": str(self.repair_max_change_fraction),
            "repair_max_plan_age_hours": str(self.repair_max_plan_age_hours),
            "repair_batch_size": str(self.repair_batch_size),
            "repair_auto": str(self.repair_auto).lower(),
            "report_zuora_url_template": self.report_zuora_url_template,
            "report_trend_runs": str(self.report_trend_runs),
            "schedule_timezone": self.schedule_timezone,
            "schedule_nightly": self.schedule_nightly,
            "schedule_catalog": self.schedule_catalog,
            "schedule_full": self.schedule_full,
            "jobs_retries": str(self.jobs_retries),
            "jobs_retry_delay_s": str(self.jobs_retry_delay_s),
            "jobs_misfire_grace_hours": str(self.jobs_misfire_grace_hours),
            "alerts_webhook_url": "set" if self.alerts_webhook_url else "not set",
            "alerts_new_drift_threshold": str(self.alerts_new_drift_threshold),
        }


# TOML layout: section -> key -> Settings field
_TOML_KEYS: dict[tuple[str, str], str] = {
    ("zuora", "base_url"): "zuora_base_url",
    ("zuora", "client_id"): "zuora_client_id",
    ("zuora", "client_secret"): "zuora_client_secret",
    ("zuora", "client_secret_file"): "_secret_file",
    ("zuora", "tenant_tz"): "tenant_tz",
    ("local", "database_url"): "local_database_url",
    ("paths", "data_dir"): "data_dir",
    ("extract", "mode"): "extract_mode",
    ("extract", "full_every_days"): "extract_full_every_days",
    ("extract", "lag_hours"): "extract_lag_hours",
    ("reconcile", "grace_hours"): "reconcile_grace_hours",
    ("validate", "max_volume_drop"): "validate_max_volume_drop",
    ("validate", "max_quarantine_share"): "validate_max_quarantine_share",
    ("repair", "max_change_fraction"): "repair_max_change_fraction",
    ("repair", "max_plan_age_hours"): "repair_max_plan_age_hours",
    ("repair", "batch_size"): "repair_batch_size",
    ("repair", "auto"): "repair_auto",
    ("report", "zuora_url_template"): "report_zuora_url_template",
    ("report", "trend_runs"): "report_trend_runs",
    ("schedule", "timezone"): "schedule_timezone",
    ("schedule", "nightly"): "schedule_nightly",
    ("schedule", "catalog"): "schedule_catalog",
    ("schedule", "full"): "schedule_full",
    ("jobs", "retries"): "jobs_retries",
    ("jobs", "retry_delay_s"): "jobs_retry_delay_s",
    ("jobs", "misfire_grace_hours"): "jobs_misfire_grace_hours",
    ("alerts", "webhook_url"): "alerts_webhook_url",
    ("alerts", "new_drift_threshold"): "alerts_new_drift_threshold",
}
ENV_VARS: dict[str, str] = {
    "RECON_ZUORA_BASE_URL": "zuora_base_url",
    "RECON_ZUORA_CLIENT_ID": "zuora_client_id",
    "RECON_ZUORA_CLIENT_SECRET": "zuora_client_secret",
    "RECON_TENANT_TZ": "tenant_tz",
    "RECON_LOCAL_DATABASE_URL": "local_database_url",
    "RECON_DATA_DIR": "data_dir",
    "RECON_EXTRACT_MODE": "extract_mode",
    "RECON_EXTRACT_FULL_EVERY_DAYS": "extract_full_every_days",
    "RECON_EXTRACT_LAG_HOURS": "extract_lag_hours",
    "RECON_RECONCILE_GRACE_HOURS": "reconcile_grace_hours",
    "RECON_VALIDATE_MAX_VOLUME_DROP": "validate_max_volume_drop",
    "RECON_VALIDATE_MAX_QUARANTINE_SHARE": "validate_max_quarantine_share",
    "RECON_REPAIR_MAX_CHANGE_FRACTION": "repair_max_change_fraction",
    "RECON_REPAIR_MAX_PLAN_AGE_HOURS": "repair_max_plan_age_hours",
    "RECON_REPAIR_BATCH_SIZE": "repair_batch_size",
    "RECON_REPAIR_AUTO": "repair_auto",
    "RECON_REPORT_ZUORA_URL_TEMPLATE": "report_zuora_url_template",
    "RECON_REPORT_TREND_RUNS": "report_trend_runs",
    "RECON_SCHEDULE_TIMEZONE": "schedule_timezone",
    "RECON_SCHEDULE_NIGHTLY": "schedule_nightly",
    "RECON_SCHEDULE_CATALOG": "schedule_catalog",
    "RECON_SCHEDULE_FULL": "schedule_full",
    "RECON_JOBS_RETRIES": "jobs_retries",
    "RECON_JOBS_RETRY_DELAY_S": "jobs_retry_delay_s",
    "RECON_JOBS_MISFIRE_GRACE_HOURS": "jobs_misfire_grace_hours",
    "RECON_ALERTS_WEBHOOK_URL": "alerts_webhook_url",
    "RECON_ALERTS_NEW_DRIFT_THRESHOLD": "alerts_new_drift_threshold",
}


def _coerce(name: str, value: Any) -> Any:
    if name in ("zuora_client_secret", "alerts_webhook_url"):
        return Secret(str(value) if value is not None else None)
    if name == "data_dir":
        return Path(str(value))
    if name == "repair_auto":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigError(f"repair.auto must be true or false, got {value!r}")
        return text in ("true", "1", "yes")
    if name in ("extract_full_every_days", "extract_lag_hours", "reconcile_grace_hours",
                "validate_max_volume_drop", "validate_max_quarantine_share",
                "repair_max_change_fraction",
                "repair_max_plan_age_hours", "repair_batch_size", "report_trend_runs",
                "jobs_retries", "jobs_retry_delay_s", "jobs_misfire_grace_hours",
                "alerts_new_drift_threshold"):
        kind = int if name in ("extract_full_every_days", "repair_batch_size",
                               "report_trend_runs", "jobs_retries",
                               "alerts_new_drift_threshold") else float
        try:
            return kind(value)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{name} must be a number, got {value!r}") from e
    if not isinstance(value, str):
        raise ConfigError(f"config key for {name!r} must be a string, got {type(value).__name__}")
    return value


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Defaults ← TOML file ← environment ← explicit overrides (CLI flags).

    ``config_file`` None means ``$RECON_CONFIG`` or ``./recon.toml`` when it exists; a path
    that was asked for explicitly and does not exist is an error, not a silent default.
    """
    env = dict(os.environ if env is None else env)
    values: dict[str, Any] = {}
    path = config_file or env.get("RECON_CONFIG")
    if path is None and Path(DEFAULT_CONFIG_FILE).is_file():
        path = DEFAULT_CONFIG_FILE
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist (from --config or RECON_CONFIG)")
        try:
            doc = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {p} is not valid TOML: {e}") from e
        for section, table in doc.items():
            if not isinstance(table, dict):
                raise ConfigError(f"{p}: top-level key {section!r} must be a [section]")
            for key, value in table.items():
                target = _TOML_KEYS.get((section, key))
                if target is None:
                    known = ", ".join(f"{s}.{k}" for s, k in _TOML_KEYS)
                    raise ConfigError(f"{p}: unknown key {section}.{key} (known: {known})")
                if not target.startswith("_"):
                    values[target] = value
        secret_file = doc.get("zuora", {}).get("client_secret_file")
        if secret_file and not env.get("RECON_ZUORA_CLIENT_SECRET"):
            if not isinstance(secret_file, str):
                raise ConfigError(f"{p}: zuora.client_secret_file must be a path string")
            sp = Path(secret_file)
            sp = sp if sp.is_absolute() else p.parent / sp
            try:
                values["zuora_client_secret"] = sp.read_text().strip()
            except OSError as e:
                raise ConfigError(
                    f"{p}: zuora.client_secret_file {sp} cannot be read ({e.strerror})"
                ) from e
    for var, target in ENV_VARS.items():
        if env.get(var):
            values[target] = env[var]
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(Settings)}
    settings = replace(Settings(), **{k: _coerce(k, v) for k, v in values.items() if k in known})
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    """Fail early, naming the setting, rather than deep inside a night's run."""
    try:
        ZoneInfo(settings.tenant_tz)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ConfigError(
            f"tenant_tz {settings.tenant_tz!r} is not an IANA time zone (e.g. America/Los_Angeles)"
        ) from e
    if settings.extract_mode not in ("full", "incremental"):
        raise ConfigError(
            f"extract mode {settings.extract_mode!r} must be 'full' or 'incremental'")
    if settings.extract_full_every_days < 1 or settings.extract_lag_hours < 0:
        raise ConfigError("extract.full_every_days must be >= 1 and extract.lag_hours >= 0")
    if settings.reconcile_grace_hours < 0:
        raise ConfigError("reconcile.grace_hours must be >= 0")
    if not 0 < settings.validate_max_volume_drop <= 1:
        raise ConfigError("validate.max_volume_drop must be a fraction in (0, 1]")
    if not 0 <= settings.validate_max_quarantine_share <= 1:
        raise ConfigError("validate.max_quarantine_share must be a fraction in [0, 1]")
    if not 0 < settings.repair_max_change_fraction <= 1:
        raise ConfigError("repair.max_change_fraction must be a fraction in (0, 1]")
    if settings.repair_max_plan_age_hours <= 0 or settings.repair_batch_size < 1:
        raise ConfigError("repair.max_plan_age_hours must be > 0 and repair.batch_size >= 1")
    if settings.report_trend_runs < 1:
        raise ConfigError("report.trend_runs must be >= 1")
    try:
        ZoneInfo(settings.schedule_timezone)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ConfigError(f"schedule.timezone {settings.schedule_timezone!r} is not an IANA "
                          "time zone (UTC is the safe choice: no DST double or skipped runs)"
                          ) from e
    for job in ("nightly", "catalog", "full"):
        expr = getattr(settings, f"schedule_{job}")
        if expr and len(expr.split()) != 5:
            raise ConfigError(f"schedule.{job} {expr!r} must be a 5-field cron expression "
                              "(minute hour day month weekday) or empty to disable the job")
    if settings.jobs_retries < 0 or settings.jobs_retry_delay_s < 0 \
            or settings.jobs_misfire_grace_hours <= 0:
        raise ConfigError("jobs.retries and jobs.retry_delay_s must be >= 0 and "
                          "jobs.misfire_grace_hours > 0")
    hook = settings.alerts_webhook_url.get()
    if hook and not hook.startswith(("https://", "http://")):
        raise ConfigError("alerts.webhook_url must be an http(s) URL")
    template = settings.report_zuora_url_template
    if template and not template.startswith(("https://", "http://")):
        raise ConfigError("report.zuora_url_template must be an http(s) URL with {object} and "
                          "{id}, or empty for no links")
    scheme = urlsplit(settings.local_database_url).scheme
    if scheme not in ("duckdb", "postgresql", "postgres"):
        raise ConfigError(
            f"local_database_url {redact_url(settings.local_database_url)!r} must start with "
            "duckdb:/// or postgresql://"
        )
