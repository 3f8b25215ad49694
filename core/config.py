"""Configuration: defaults ← a TOML file (``recon.toml``) ← ``RECON_*`` environment ← flags.

Each setting is declared once, as a field of :class:`Settings` built with :func:`setting`: its
type, default, TOML key, help text and limits. The environment variable is ``RECON_`` plus the
field name in capitals, and a field typed :class:`Secret` is a secret. Everything else is
derived from that declaration: the pydantic-settings model that reads and validates the
sources (:func:`load_settings`), :data:`SETTINGS` and :data:`ENV_VARS`, ``describe()``, and
``recon config show`` (:func:`explain_settings`, which also says where each value came from).

:class:`Settings` stays a frozen dataclass so that callers can build one directly in tests and
derive variants with :func:`dataclasses.replace`; only :func:`load_settings` validates, because
only it reads what a person typed.

Secrets (the Zuora client secret, the alert webhook) come only from the environment or the
file and are wrapped in :class:`Secret`, whose ``repr``/``str`` never reveal the value, so a
stray log line, an error or a report cannot leak them. URLs are shown through
:func:`redact_url`.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, get_type_hints
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, create_model
from pydantic.fields import FieldInfo
from pydantic_core import core_schema
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from core.errors import ConfigError

DEFAULT_CONFIG_FILE = "recon.toml"
ENV_PREFIX = "RECON_"


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

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        """Pydantic wraps a string from the file or the environment straight into a Secret, so
        the plain value never sits in a validated model where it could be dumped."""
        return core_schema.no_info_plain_validator_function(cls._wrap)

    @classmethod
    def _wrap(cls, value: Any) -> Secret:
        if isinstance(value, Secret):
            return value
        if value is None or isinstance(value, str):
            return cls(value)
        raise ValueError(f"must be a string, got a {type(value).__name__}")


_QUERY_SECRET = re.compile(r"(?i)(^|&)(password|passfile|sslpassword)=[^&]*")


def redact_url(url: str) -> str:
    """``postgresql://u:pw@h/db`` → ``postgresql://u:***@h/db``, and a password given as a
    query parameter (libpq's ``?password=…``, ``sslpassword``, ``passfile``) → ``***``;
    anything else unchanged."""
    parts = urlsplit(url)
    if parts.password is not None:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        parts = parts._replace(netloc=netloc)
    if parts.query:
        parts = parts._replace(query=_QUERY_SECRET.sub(r"\1\2=***", parts.query))
    out = urlunsplit(parts)
    return url if out == urlunsplit(urlsplit(url)) else out


# -- checks a declaration can name (each raises ValueError with the problem, not the key) -------
def _iana_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. America/Los_Angeles, or "
                         "UTC: no DST double or skipped runs)") from e
    return value


def _extract_mode(value: str) -> str:
    if value not in ("full", "incremental"):
        raise ValueError(f"extract mode {value!r} must be 'full' or 'incremental'")
    return value


def _cron(value: str) -> str:
    """APScheduler's own parser, so that an expression the scheduler would refuse at 2 a.m. is
    refused at load instead (``61 2 * * *`` has five fields but no minute 61)."""
    if not value.strip():
        return value  # "" disables the job
    from apscheduler.triggers.cron import CronTrigger  # only when a cron was actually set

    try:
        CronTrigger.from_crontab(value.strip(), timezone="UTC")
    except ValueError as e:
        raise ValueError(f"{value!r} is not a valid 5-field cron expression (minute hour day "
                         f"month weekday), or empty to disable the job: {e}") from e
    return value


def _http_url(value: str) -> str:
    if value and not value.startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL with {object} and {id}, or empty for no links")
    return value


def _secret_http_url(value: Secret) -> Secret:
    hook = value.get()
    if hook and not hook.startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL")  # the value is a secret: not repeated
    return value


def _database_url(value: str) -> str:
    if urlsplit(value).scheme not in ("duckdb", "postgresql", "postgres"):
        raise ValueError(f"local_database_url {redact_url(value)!r} must start with duckdb:/// "
                         "or postgresql://")
    return value


def _event_kinds(value: str) -> str:
    """The ``[callouts.events.<kind>]`` tables (kept as JSON text) must parse into event kinds:
    the check lives with the kinds (``core.inbox.kinds``), imported here only when set."""
    if value:
        from core.inbox.kinds import parse_event_kinds

        parse_event_kinds(value)
    return value


def _guard_tables(value: str) -> str:
    """Every name must be a mixed table of the catalogue with something to guard: the check
    lives with the guards (``core.localdb.guards``), imported here only when set."""
    if value.strip():
        from core.localdb.guards import check_guard_tables, parse_names

        check_guard_tables(parse_names(value))
    return value


_TRIGGER_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_$]*\.)?[A-Za-z_][A-Za-z0-9_$]*$")


def _trigger_names(value: str) -> str:
    for name in value.replace(",", " ").split():
        if not _TRIGGER_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a trigger name or table.trigger")
    return value


_OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


def _owner_name(value: str) -> str:
    if value and not _OWNER.fullmatch(value):
        raise ValueError(f"owner {value!r} must be a short name (letters, digits, _ . @ -), "
                         "e.g. billing or catalog-team")
    return value


def _owner_table(value: str, what: str) -> dict[str, str]:
    """A ``[owners]`` sub-table (kept as JSON text, like ``callouts.events``): name -> owner."""
    if not value:
        return {}
    try:
        table = json.loads(value)
    except ValueError as e:
        raise ValueError(f"must be a table of {what} = owner (JSON in the environment): {e}") \
            from e
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise ValueError(f"must be a table of {what} = \"owner\" strings")
    for owner in table.values():
        _owner_name(owner)
    return table


def _owner_rules(value: str) -> str:
    for code in _owner_table(value, "rule.<D-id>"):
        if not re.fullmatch(r"D\d{2}", code):
            raise ValueError(f"rule.{code}: a rule is named by its D-id, e.g. rule.D22")
    return value


def _owner_objects(value: str) -> str:
    table = _owner_table(value, "object.<name>")
    if table:
        from core.catalog import BY_NAME, BY_TABLE, LOCAL_BY_NAME

        known = set(BY_NAME) | set(BY_TABLE) | set(LOCAL_BY_NAME)
        for name in table:
            if name not in known:
                raise ValueError(f"object.{name}: not an object or local table of the "
                                 f"catalogue ({', '.join(sorted(BY_NAME))}, or a local table)")
    return value


def _owner_webhooks(value: Secret) -> Secret:
    text = value.get()
    if not text:
        return value
    try:
        table = json.loads(text)
    except ValueError:
        raise ValueError("must be a table of webhook.<owner> = URL (JSON in the environment)") \
            from None  # the text holds secrets: not repeated
    if not isinstance(table, dict):
        raise ValueError("must be a table of webhook.<owner> = URL")
    for owner, url in table.items():
        _owner_name(owner)
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise ValueError(f"webhook.{owner} must be an http(s) URL")  # the URL: not shown
    return value


_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def _yes_no(value: Any) -> Any:
    """The spellings recon has always accepted, and no more (pydantic alone would take "on")."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in _TRUE + _FALSE:
        raise ValueError(f"must be true or false, got {value!r}")
    return text in _TRUE


# -- the declaration ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Declared:
    """What :func:`setting` attaches to a field (the parts a type annotation cannot say)."""

    key: str
    help: str
    file_key: str | None
    redact: bool
    checks: tuple[Any, ...]


_META = "recon.setting"


def setting(default: Any, key: str, help: str, *, check: Callable[[Any], Any] | None = None,
            file_key: str | None = None, redact: bool = False, **limits: float) -> Any:
    """Declare one setting: ``key`` is its TOML ``section.name``, ``help`` its README line,
    ``limits`` pydantic bounds (``ge``, ``gt``, ``le``, ``lt``), ``check`` a validator that
    raises ValueError, ``redact`` masks a password in a URL, ``file_key`` a second TOML key
    naming a file that holds the value (``zuora.client_secret_file``: a mounted secret)."""
    checks: list[Any] = []
    if limits:
        checks.append(Field(**limits))  # type: ignore[arg-type]
    if check is not None:
        checks.append(AfterValidator(check))
    declared = _Declared(key, help, file_key, redact, tuple(checks))
    return field(default=default, metadata={_META: declared})


@dataclass(frozen=True, repr=False)
class Settings:
    """Everything recon needs to know about its surroundings, one field per setting."""

    zuora_base_url: str = setting("http://127.0.0.1:8808", "zuora.base_url", "Zuora base URL")
    zuora_client_id: str = setting("recon", "zuora.client_id", "OAuth client id")
    zuora_client_secret: Secret = setting(Secret(None), "zuora.client_secret",
                                          "OAuth client secret",
                                          file_key="zuora.client_secret_file")
    tenant_tz: str = setting("America/Los_Angeles", "zuora.tenant_tz", "tenant time zone",
                             check=_iana_zone)
    local_database_url: str = setting("duckdb:///data/local.duckdb", "local.database_url",
                                      "local database", check=_database_url, redact=True)
    local_guard_tables: str = setting(
        "", "local.guard_tables",
        "PostgreSQL: mixed tables whose Zuora-owned and derived columns only recon may update "
        "(comma-separated, e.g. orders, billing_accounts)", check=_guard_tables)
    data_dir: Path = setting(Path("data"), "paths.data_dir", "data directory")
    extract_mode: str = setting("incremental", "extract.mode", "default extract mode",
                                check=_extract_mode)
    extract_full_every_days: int = setting(7, "extract.full_every_days",
                                           "full export at least every (days)", ge=1)
    extract_lag_hours: float = setting(2.0, "extract.lag_hours", "incremental lag (hours)",
                                       ge=0)
    reconcile_grace_hours: float = setting(
        2.0, "reconcile.grace_hours",
        "grace window (hours): Zuora changes this recent are pending, not drift", ge=0)
    validate_max_volume_drop: float = setting(0.2, "validate.max_volume_drop",
                                              "max volume drop per object", gt=0, le=1)
    validate_max_quarantine_share: float = setting(
        0.01, "validate.max_quarantine_share", "max share of an object quarantined", ge=0, le=1)
    repair_max_change_fraction: float = setting(
        0.05, "repair.max_change_fraction", "repair: max share of a table one apply may change",
        gt=0, le=1)
    repair_max_plan_age_hours: float = setting(24.0, "repair.max_plan_age_hours",
                                               "repair: max plan age (hours)", gt=0)
    repair_batch_size: int = setting(1000, "repair.batch_size",
                                     "repair: operations per transaction", ge=1)
    repair_auto: bool = setting(False, "repair.auto", "repair: nightly job applies auto repairs")
    repair_allowed_triggers: str = setting(
        "", "repair.allowed_triggers",
        "repair: other triggers allowed on the tables it writes (comma-separated trigger or "
        "table.trigger)", check=_trigger_names)
    report_zuora_url_template: str = setting(
        "https://www.zuora.com/platform/{object}/{id}", "report.zuora_url_template",
        "report: link for Zuora ids, with {object} and {id} (empty: no links)",
        check=_http_url)
    report_trend_runs: int = setting(14, "report.trend_runs",
                                     "report: runs shown in trends and sparklines", ge=1)
    schedule_timezone: str = setting("UTC", "schedule.timezone",
                                     "time zone of the cron schedules", check=_iana_zone)
    schedule_nightly: str = setting("30 2 * * *", "schedule.nightly",
                                    "cron of the nightly job (empty disables it)", check=_cron)
    schedule_catalog: str = setting("0 6 * * *", "schedule.catalog",
                                    "cron of the catalog job (empty disables it)", check=_cron)
    schedule_full: str = setting("0 4 * * 0", "schedule.full",
                                 "cron of the weekly full job (empty disables it)", check=_cron)
    jobs_retries: int = setting(2, "jobs.retries",
                                "extra attempts after a transient failure", ge=0)
    jobs_retry_delay_s: float = setting(30.0, "jobs.retry_delay_s",
                                        "first retry backoff (s), doubled per attempt", ge=0)
    jobs_misfire_grace_hours: float = setting(
        6.0, "jobs.misfire_grace_hours",
        "misfire grace (hours): a tick missed by less still runs once", gt=0)
    alerts_webhook_url: Secret = setting(Secret(None), "alerts.webhook_url",
                                         "alert webhook, Slack-compatible (a secret)",
                                         check=_secret_http_url)
    alerts_new_drift_threshold: int = setting(
        1, "alerts.new_drift_threshold", "alert when a run has at least this many new findings")
    # owners (issue 17): who a finding belongs to, shown in the report and the alerts
    owners_default: str = setting(
        "", "owners.default", "owners: owner of a finding no rule or object names (empty: none)",
        check=_owner_name)
    owners_rule: str = setting(
        "", "owners.rule", "owners: rule.<D-id> = owner, by rule or likely drift (JSON in env)",
        check=_owner_rules)
    owners_object: str = setting(
        "", "owners.object", "owners: object.<object or local table> = owner (JSON in env)",
        check=_owner_objects)
    owners_webhook: Secret = setting(
        Secret(None), "owners.webhook",
        "owners: webhook.<owner> = URL, alerts of that owner's findings (a secret; JSON in env)",
        check=_owner_webhooks)
    # targeted sync (issue 15, `recon sync`): guards sized for one key, not a whole table
    sync_max_rows_per_key: int = setting(
        5000, "sync.max_rows_per_key",
        "sync: refuse a key whose subtree (Zuora + local rows) is larger", ge=1)
    sync_batch_threshold: int = setting(
        200, "sync.batch_threshold",
        "sync: more keys than this in one request are read by one incremental export", ge=1)
    sync_catalog_min_rows: int = setting(
        20, "sync.catalog_min_rows",
        "catalog sync and job: rows a catalog table may always lose (small tables' floor)",
        ge=0)
    sync_catalog_max_shrink: float = setting(
        0.5, "sync.catalog_max_shrink",
        "sync: refuse a catalog sync that removes more than this share of a table", gt=0, le=1)
    # snapshot retention (issue 17): `recon snapshots prune`, and after each job run
    snapshots_keep_days: float = setting(
        0.0, "snapshots.keep_days",
        "snapshots: after each job run, remove snapshots older than this many days that "
        "nothing needs (0: never automatically; `recon snapshots prune --keep-days N`)", ge=0)
    # -- issue 15: the callout receiver, its inbox and workers, the shared request budget --
    callouts_host: str = setting("127.0.0.1", "callouts.host", "callouts: receiver bind address")
    callouts_port: int = setting(8809, "callouts.port", "callouts: receiver port", ge=1,
                                 le=65535)
    callouts_metrics_host: str = setting(
        "127.0.0.1", "callouts.metrics_host",
        "callouts: bind address of /metrics (keep it internal)")
    callouts_metrics_port: int = setting(
        9809, "callouts.metrics_port",
        "callouts: port of /metrics (0: served on the receiver's own port)", ge=0, le=65535)
    callouts_user: str = setting("", "callouts.user",
                                 "callouts: Basic auth user Zuora sends (empty: no Basic auth)")
    callouts_password: Secret = setting(Secret(None), "callouts.password",
                                        "callouts: Basic auth password (a secret)",
                                        file_key="callouts.password_file")
    callouts_hmac_secret: Secret = setting(
        Secret(None), "callouts.hmac_secret",
        "callouts: HMAC-SHA256 secret of the body signature (a secret; empty: not checked)",
        file_key="callouts.hmac_secret_file")
    callouts_hmac_header: str = setting("X-Zuora-Signature", "callouts.hmac_header",
                                        "callouts: header carrying the hex HMAC-SHA256")
    callouts_max_body_bytes: int = setting(65536, "callouts.max_body_bytes",
                                           "callouts: largest payload accepted (else 413)",
                                           ge=256)
    callouts_dedupe_days: float = setting(
        7.0, "callouts.dedupe_days",
        "callouts: Zuora-Notification-Id dedupe window (days; Zuora retries ≤ 5 × 24 h)", gt=0)
    callouts_retention_days: float = setting(
        14.0, "callouts.retention_days",
        "callouts: processed events and kept payloads are pruned after (days)", gt=0)
    callouts_debounce_contact_s: float = setting(
        5.0, "callouts.debounce_contact_s", "callouts: contact debounce (s) from the first "
        "pending event", ge=0)
    callouts_debounce_account_s: float = setting(
        5.0, "callouts.debounce_account_s", "callouts: account debounce (s)", ge=0)
    callouts_debounce_subscription_s: float = setting(
        5.0, "callouts.debounce_subscription_s", "callouts: subscription debounce (s)", ge=0)
    callouts_debounce_catalog_s: float = setting(
        300.0, "callouts.debounce_catalog_s", "callouts: catalog debounce (s)", ge=0)
    callouts_max_attempts: int = setting(
        5, "callouts.max_attempts", "callouts: sync attempts before a key is dead-lettered",
        ge=1)
    callouts_retry_backoff_s: float = setting(
        30.0, "callouts.retry_backoff_s",
        "callouts: first retry delay after a transient sync failure (s), doubled per attempt",
        ge=0)
    callouts_workers: int = setting(2, "callouts.workers",
                                    "callouts: sync worker threads per process", ge=0)
    callouts_claim_lease_s: float = setting(
        3600.0, "callouts.claim_lease_s",
        "callouts: a claimed sync not finished after this long (s) is taken over", gt=0)
    callouts_events: str = setting(
        "", "callouts.events",
        "callouts: [callouts.events.<kind>] tables (path, keys) over the defaults (JSON in env)",
        check=_event_kinds)
    callouts_alert_oldest_pending_s: float = setting(
        900.0, "callouts.alert_oldest_pending_s",
        "callouts: alert when the oldest pending event is older (s)", gt=0)
    callouts_alert_rejects: int = setting(
        10, "callouts.alert_rejects",
        "callouts: alert on this many 400/401 answers within alert_window_s", ge=1)
    callouts_alert_window_s: float = setting(300.0, "callouts.alert_window_s",
                                             "callouts: window of the reject burst alert (s)",
                                             gt=0)
    zuora_budget_rate_per_s: float = setting(
        20.0, "zuora.budget_rate_per_s",
        "Zuora request budget shared by recon's processes: requests per second (0: no limit)",
        ge=0)
    zuora_budget_concurrency: int = setting(
        10, "zuora.budget_concurrency",
        "Zuora request budget: requests in flight at once across processes (0: no limit)", ge=0)

    def describe(self) -> dict[str, str]:
        """A printable view with secrets masked (reports show it and hash it into config_hash)."""
        return {s.name: s.show(getattr(self, s.name)) for s in SETTINGS}

    def __repr__(self) -> str:
        shown = ", ".join(f"{s.name}={s.show(getattr(self, s.name))!r}" for s in SETTINGS)
        return f"Settings({shown})"


@dataclass(frozen=True)
class SettingSpec:
    """One declared setting, as the README table, the loader and ``config show`` see it."""

    name: str  # the Settings attribute
    key: str  # the TOML key, section.name
    env: str  # the environment variable
    help: str
    default: Any
    type: Any  # the Python type (str, int, float, bool, Path or Secret)
    secret: bool
    redact: bool
    file_key: str | None
    checks: tuple[Any, ...]

    def show(self, value: Any) -> str:
        """How the value prints: secrets only say whether they are set, URLs lose passwords."""
        if self.secret:
            return "set" if value else "not set"
        if isinstance(value, bool):
            return str(value).lower()
        text = str(value)
        return redact_url(text) if self.redact else text


def _specs() -> tuple[SettingSpec, ...]:
    hints = get_type_hints(Settings)
    out = []
    for f in fields(Settings):
        d: _Declared = f.metadata[_META]
        kind = hints[f.name]
        out.append(SettingSpec(f.name, d.key, ENV_PREFIX + f.name.upper(), d.help, f.default,
                               kind, kind is Secret, d.redact, d.file_key, d.checks))
    return tuple(out)


#: Every setting, in declaration order.
SETTINGS: tuple[SettingSpec, ...] = _specs()
#: environment variable -> Settings attribute
ENV_VARS: dict[str, str] = {s.env: s.name for s in SETTINGS}
_BY_NAME = {s.name: s for s in SETTINGS}
_BY_KEY = {s.key: s for s in SETTINGS}
_BY_FILE_KEY = {s.file_key: s for s in SETTINGS if s.file_key}


# -- loading through pydantic-settings ---------------------------------------------------------
@dataclass
class _Call:
    """What one :func:`load_settings` call reads: its environment and the file's values."""

    env: Mapping[str, str]
    file_values: dict[str, Any]
    env_values: dict[str, Any] = field(default_factory=dict)


_CALL: ContextVar[_Call] = ContextVar("recon_settings_call")


class _Env(EnvSettingsSource):
    """``RECON_*`` from the mapping :func:`load_settings` was given (tests pass ``env=``), by
    exact name, an empty value counting as unset."""

    def __init__(self, settings_cls: type[BaseSettings], call: _Call) -> None:
        self._call = call
        super().__init__(settings_cls, case_sensitive=False, env_prefix=ENV_PREFIX,
                         env_ignore_empty=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # pydantic-settings matches lower-cased names; only the exact README spelling counts
        return {k.lower(): v for k, v in self._call.env.items() if k in ENV_VARS and v}

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        self._call.env_values = values
        return values


class _File(PydanticBaseSettingsSource):
    """The TOML file's values, already flattened to attribute names by :func:`_read_toml`."""

    def __init__(self, settings_cls: type[BaseSettings], call: _Call) -> None:
        super().__init__(settings_cls)
        self._call = call

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._call.file_values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._call.file_values)


class _SourcesBase(BaseSettings):
    model_config = SettingsConfigDict(extra="forbid", validate_default=False)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The precedence, highest first: flags (init keywords), environment, file; then the
        declared defaults. No .env file and no secrets directory: recon never read those."""
        call = _CALL.get()
        return init_settings, _Env(settings_cls, call), _File(settings_cls, call)


def _field(spec: SettingSpec) -> tuple[Any, Any]:
    kind: Any = spec.type
    extra = (BeforeValidator(_yes_no),) if kind is bool else ()
    if spec.checks or extra:
        kind = Annotated[(kind, *extra, *spec.checks)]  # type: ignore[valid-type]
    return kind, spec.default


#: The pydantic-settings model generated from the declaration (never built by hand).
_Sources: type[BaseSettings] = create_model(  # type: ignore[call-overload]
    "SettingsSources", __base__=_SourcesBase, **{s.name: _field(s) for s in SETTINGS})


def _read_toml(path: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """The file's values by attribute name; an unknown key or a non-table is an error here,
    because a typo in a config file must not silently fall back to a default."""
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist (from --config or RECON_CONFIG)")
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from e
    values: dict[str, Any] = {}
    files: dict[str, Any] = {}  # setting name -> the file its file_key names
    for section, table in doc.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: top-level key {section!r} must be a [section]")
        for key, value in table.items():
            dotted = f"{section}.{key}"
            if dotted in _BY_FILE_KEY:
                files[_BY_FILE_KEY[dotted].name] = value
                continue
            spec = _BY_KEY.get(dotted)
            if spec is not None and spec.type in (str, Secret) and isinstance(value, dict):
                # a table for a text setting ([callouts.events.<kind>], [owners] rule.<D-id>):
                # kept as JSON
                value = json.dumps(value, sort_keys=True)
            if (spec is not None and spec.type is str and isinstance(value, list)
                    and all(isinstance(v, str) for v in value)):
                value = ", ".join(value)  # a list setting written as a TOML array
            if spec is None:
                known = ", ".join(k for s in SETTINGS for k in (s.key, s.file_key) if k)
                raise ConfigError(f"{path}: unknown key {dotted} (known: {known})")
            values[spec.name] = value
    for name, named in files.items():
        spec = _BY_NAME[name]
        if not named or env.get(spec.env):
            continue  # the environment wins, so its file need not even be readable
        if not isinstance(named, str):
            raise ConfigError(f"{path}: {spec.file_key} must be a path string")
        sp = Path(named)
        sp = sp if sp.is_absolute() else path.parent / sp
        try:
            values[spec.name] = sp.read_text().strip()  # the file beats an inline value
        except OSError as e:
            raise ConfigError(
                f"{path}: {spec.file_key} {sp} cannot be read ({e.strerror})") from e
    return values


_NUMBER_ERRORS = {"int_parsing", "int_type", "float_parsing", "float_type", "int_from_float"}
_BOUNDS = {"greater_than_equal": ("ge", ">="), "greater_than": ("gt", ">"),
           "less_than_equal": ("le", "<="), "less_than": ("lt", "<")}


def _problem(err: Any, spec: SettingSpec | None) -> str:
    """One pydantic error as recon says it; the value is repeated unless it is a secret."""
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    shown = "***" if spec is not None and spec.secret else (
        redact_url(value) if isinstance(value, str) else value)
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind in _NUMBER_ERRORS:
        whole = " whole" if kind == "int_from_float" else ""
        return f"must be a{whole} number, got {shown!r}"
    if kind in _BOUNDS:
        key, op = _BOUNDS[kind]
        return f"must be {op} {ctx.get(key)}, got {shown!r}"
    if kind == "string_type":
        return f"must be a string, got {shown!r}"
    return f"{err['msg']}, got {shown!r}"


def _config_error(e: ValidationError, sources: Mapping[str, str]) -> ConfigError:
    lines = []
    for err in e.errors():
        name = str(err["loc"][0]) if err["loc"] else "?"
        spec = _BY_NAME.get(name)
        if spec is None:
            lines.append(f"unknown setting {name!r} (from a flag)")
            continue
        origin = sources.get(name, "default")
        lines.append(f"{spec.key} ({spec.name}, from {origin}): {_problem(err, spec)}")
    return ConfigError("; ".join(lines))


def _config_path(config_file: str | os.PathLike[str] | None,
                 env: Mapping[str, str]) -> Path | None:
    path = config_file or env.get("RECON_CONFIG")
    if path is None and Path(DEFAULT_CONFIG_FILE).is_file():
        path = DEFAULT_CONFIG_FILE
    return None if path is None else Path(path)


def _load(config_file: str | os.PathLike[str] | None, env: Mapping[str, str] | None,
          overrides: Mapping[str, Any]) -> tuple[Settings, dict[str, str]]:
    environ = dict(os.environ if env is None else env)
    path = _config_path(config_file, environ)
    file_values = _read_toml(path, environ) if path is not None else {}
    flags = {k: v for k, v in overrides.items() if v is not None}
    call = _Call(environ, file_values)
    token = _CALL.set(call)
    try:
        loaded = _Sources(**flags)
        error: ValidationError | None = None
    except ValidationError as e:
        error = e
    finally:
        _CALL.reset(token)
    sources: dict[str, str] = {}
    for spec in SETTINGS:
        if spec.name in flags:
            sources[spec.name] = "flag"
        elif spec.name in call.env_values:
            sources[spec.name] = f"env:{spec.env}"
        elif spec.name in file_values:
            sources[spec.name] = f"file:{path}"
        else:
            sources[spec.name] = "default"
    if error is not None:
        raise _config_error(error, sources) from None  # pydantic's text could echo a secret
    return Settings(**{s.name: getattr(loaded, s.name) for s in SETTINGS}), sources


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Defaults ← TOML file ← environment ← explicit overrides (CLI flags; None = not given).

    ``config_file`` None means ``$RECON_CONFIG`` or ``./recon.toml`` when it exists; a path
    that was asked for explicitly and does not exist is an error, not a silent default. Any
    invalid value is a :class:`ConfigError` naming the TOML key and where the value came from.
    """
    return _load(config_file, env, overrides)[0]


@dataclass(frozen=True)
class SettingRow:
    """One line of ``recon config show``."""

    key: str  # TOML key
    setting: str  # Settings attribute
    env: str  # environment variable
    value: str  # as printed: secrets "set"/"not set", URL passwords masked
    source: str  # "default", "file:PATH", "env:VAR" or "flag"


def explain_settings(
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> list[SettingRow]:
    """The effective settings, as :func:`load_settings` resolves them, with each value's source
    (so that "why is the nightly using that database?" has an answer without reading code)."""
    settings, sources = _load(config_file, env, overrides)
    return [SettingRow(s.key, s.name, s.env, s.show(getattr(settings, s.name)), sources[s.name])
            for s in SETTINGS]


def validate(settings: Settings) -> None:
    """Check a Settings built in code (e.g. with ``dataclasses.replace``) as a loaded one would
    be checked: ConfigError naming the setting, rather than failing deep inside a night's run."""
    token = _CALL.set(_Call(env={}, file_values={}))  # every value comes in as a keyword
    try:
        _Sources(**{s.name: getattr(settings, s.name) for s in SETTINGS})
    except ValidationError as e:
        raise _config_error(e, {s.name: "code" for s in SETTINGS}) from None
    finally:
        _CALL.reset(token)
