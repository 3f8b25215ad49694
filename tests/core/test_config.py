"""core.config: file → environment → overrides, validation, and secrets that never print.

Every test passes ``env=`` explicitly and runs in an empty directory, so neither the real
environment nor a ``recon.toml`` lying in the working tree can change the outcome.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from core.config import (
    ENV_VARS,
    SETTINGS,
    Secret,
    Settings,
    SettingSpec,
    explain_settings,
    load_settings,
    redact_url,
    validate,
)
from core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

FULL_TOML = """
[zuora]
base_url = "https://rest.test.zuora.example"
client_id = "file-client"
client_secret = "file-secret"
tenant_tz = "Europe/Berlin"

[local]
database_url = "postgresql://recon:file-pw@db.example:5432/cdot"

[paths]
data_dir = "/srv/recon"
"""


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, text: str, name: str = "recon.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# The defaults README's settings table documents, written out by hand: a changed default must
# change README (and this table) too, not pass because the code agrees with itself.
DOCUMENTED_DEFAULTS = {
    "zuora_base_url": "http://127.0.0.1:8808",
    "zuora_client_id": "recon",
    "zuora_client_secret": "not set",
    "tenant_tz": "America/Los_Angeles",
    "local_database_url": "duckdb:///data/local.duckdb",
    "data_dir": "data",
    "extract_mode": "incremental",
    "extract_full_every_days": "7",
    "extract_lag_hours": "2.0",
    "reconcile_grace_hours": "2.0",
    "validate_max_volume_drop": "0.2",
    "repair_max_change_fraction": "0.05",
    "repair_max_plan_age_hours": "24.0",
    "repair_batch_size": "1000",
    "repair_auto": "false",
    "repair_allowed_triggers": "",
    "local_guard_tables": "",
    "schedule_timezone": "UTC",
    "schedule_nightly": "30 2 * * *",
    "schedule_catalog": "0 6 * * *",
    "schedule_full": "0 4 * * 0",
    "jobs_retries": "2",
    "jobs_retry_delay_s": "30.0",
    "jobs_misfire_grace_hours": "6.0",
    "alerts_webhook_url": "not set",
    "alerts_new_drift_threshold": "1",
    "callouts_port": "8809",
    "callouts_metrics_host": "127.0.0.1",
    "callouts_password": "not set",
    "callouts_hmac_header": "X-Zuora-Signature",
    "callouts_dedupe_days": "7.0",
    "callouts_debounce_subscription_s": "5.0",
    "callouts_debounce_catalog_s": "300.0",
    "callouts_max_attempts": "5",
    "sync_batch_threshold": "200",
}


def test_defaults_without_any_file_or_env() -> None:
    s = load_settings(env={})  # the working directory is empty: no recon.toml either
    shown = s.describe()
    assert {k: shown.get(k) for k in DOCUMENTED_DEFAULTS} == DOCUMENTED_DEFAULTS
    assert s.data_dir == Path("data") and s.zuora_client_secret.get() is None


def test_toml_keys_map_to_settings(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, FULL_TOML, "custom.toml"), env={})
    assert s.zuora_base_url == "https://rest.test.zuora.example"
    assert s.zuora_client_id == "file-client"
    assert s.zuora_client_secret.get() == "file-secret"
    assert s.tenant_tz == "Europe/Berlin"
    assert s.local_database_url == "postgresql://recon:file-pw@db.example:5432/cdot"
    assert s.data_dir == Path("/srv/recon")


def test_recon_toml_in_working_directory_is_found(tmp_path: Path) -> None:
    write(tmp_path, '[zuora]\nclient_id = "from-cwd"\n')
    assert load_settings(env={}).zuora_client_id == "from-cwd"


def test_recon_config_env_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[zuora]\nclient_id = "via-env"\n', "elsewhere.toml")
    assert load_settings(env={"RECON_CONFIG": str(path)}).zuora_client_id == "via-env"


def test_env_overrides_file(tmp_path: Path) -> None:
    env = {
        "RECON_ZUORA_BASE_URL": "http://env:1",
        "RECON_ZUORA_CLIENT_ID": "env-client",
        "RECON_ZUORA_CLIENT_SECRET": "env-secret",
        "RECON_TENANT_TZ": "UTC",
        "RECON_LOCAL_DATABASE_URL": "duckdb:///tmp/env.duckdb",
        "RECON_DATA_DIR": "env-data",
        "RECON_EXTRACT_MODE": "full",
        "RECON_EXTRACT_FULL_EVERY_DAYS": "3",
        "RECON_EXTRACT_LAG_HOURS": "0.5",
        "RECON_RECONCILE_GRACE_HOURS": "6",
        "RECON_VALIDATE_MAX_VOLUME_DROP": "0.05",
        "RECON_VALIDATE_MAX_QUARANTINE_SHARE": "0.25",
        "RECON_REPAIR_MAX_CHANGE_FRACTION": "0.1",
        "RECON_REPAIR_MAX_PLAN_AGE_HOURS": "6",
        "RECON_REPAIR_BATCH_SIZE": "50",
        "RECON_REPAIR_AUTO": "true",
        "RECON_REPORT_ZUORA_URL_TEMPLATE": "https://zuora.example.com/{object}/{id}",
        "RECON_REPORT_TREND_RUNS": "7",
        "RECON_SCHEDULE_TIMEZONE": "Europe/Berlin",
        "RECON_SCHEDULE_NIGHTLY": "15 1 * * *",
        "RECON_SCHEDULE_CATALOG": "",
        "RECON_SCHEDULE_FULL": "0 5 * * 6",
        "RECON_JOBS_RETRIES": "4",
        "RECON_JOBS_RETRY_DELAY_S": "1.5",
        "RECON_JOBS_MISFIRE_GRACE_HOURS": "2",
        "RECON_ALERTS_WEBHOOK_URL": "https://hooks.example.com/T000/B000/XXXX",
        "RECON_ALERTS_NEW_DRIFT_THRESHOLD": "10",
        # issue 15: the callout receiver, workers and the shared request budget
        "RECON_CALLOUTS_HOST": "0.0.0.0",
        "RECON_CALLOUTS_PORT": "9000",
        "RECON_CALLOUTS_METRICS_HOST": "10.0.0.1",
        "RECON_CALLOUTS_METRICS_PORT": "0",
        "RECON_CALLOUTS_USER": "zuora",
        "RECON_CALLOUTS_PASSWORD": "callout-pw",
        "RECON_CALLOUTS_HMAC_SECRET": "hmac-key",
        "RECON_CALLOUTS_HMAC_HEADER": "X-Sig",
        "RECON_CALLOUTS_MAX_BODY_BYTES": "4096",
        "RECON_CALLOUTS_DEDUPE_DAYS": "6",
        "RECON_CALLOUTS_RETENTION_DAYS": "30",
        "RECON_CALLOUTS_DEBOUNCE_CONTACT_S": "1",
        "RECON_CALLOUTS_DEBOUNCE_ACCOUNT_S": "2",
        "RECON_CALLOUTS_DEBOUNCE_SUBSCRIPTION_S": "3",
        "RECON_CALLOUTS_DEBOUNCE_CATALOG_S": "60",
        "RECON_CALLOUTS_MAX_ATTEMPTS": "7",
        "RECON_CALLOUTS_RETRY_BACKOFF_S": "5",
        "RECON_CALLOUTS_WORKERS": "3",
        "RECON_CALLOUTS_CLAIM_LEASE_S": "120",
        "RECON_CALLOUTS_EVENTS": '{"account": {"path": "/z/account"}}',
        "RECON_CALLOUTS_ALERT_OLDEST_PENDING_S": "60",
        "RECON_CALLOUTS_ALERT_REJECTS": "3",
        "RECON_CALLOUTS_ALERT_WINDOW_S": "30",
        "RECON_SYNC_BATCH_THRESHOLD": "20",
        "RECON_SYNC_MAX_ROWS_PER_KEY": "100",
        "RECON_SYNC_CATALOG_MIN_ROWS": "5",
        "RECON_SYNC_CATALOG_MAX_SHRINK": "0.25",
        "RECON_ZUORA_BUDGET_RATE_PER_S": "5",
        "RECON_ZUORA_BUDGET_CONCURRENCY": "4",
        # issue 16: the local-copy guards
        "RECON_LOCAL_GUARD_TABLES": "orders, billing_accounts",
        "RECON_REPAIR_ALLOWED_TRIGGERS": "orders.app_audit, touch_updated_at",
        # issue 17: snapshot retention
        "RECON_SNAPSHOTS_KEEP_DAYS": "14",
        # issue 17: owners
        "RECON_OWNERS_DEFAULT": "data-eng",
        "RECON_OWNERS_RULE": '{"D22": "catalog-team"}',
        "RECON_OWNERS_OBJECT": '{"orders": "crm"}',
        "RECON_OWNERS_WEBHOOK": '{"crm": "https://hooks.example.com/crm"}',
    }
    assert set(env) == set(ENV_VARS), "a new RECON_* variable needs a line in this test"
    s = load_settings(write(tmp_path, FULL_TOML), env=env)
    assert s.zuora_base_url == "http://env:1"
    assert s.zuora_client_id == "env-client"
    assert s.zuora_client_secret.get() == "env-secret"
    assert s.tenant_tz == "UTC"
    assert s.local_database_url == "duckdb:///tmp/env.duckdb"
    assert s.data_dir == Path("env-data")
    assert (s.extract_mode, s.extract_full_every_days, s.extract_lag_hours) == ("full", 3, 0.5)
    assert (s.reconcile_grace_hours, s.validate_max_volume_drop,
            s.validate_max_quarantine_share) == (6.0, 0.05, 0.25)
    assert (s.repair_max_change_fraction, s.repair_max_plan_age_hours, s.repair_batch_size,
            s.repair_auto) == (0.1, 6.0, 50, True)
    assert (s.report_zuora_url_template, s.report_trend_runs) == (
        "https://zuora.example.com/{object}/{id}", 7)
    assert (s.schedule_timezone, s.schedule_nightly, s.schedule_full, s.jobs_retries,
            s.jobs_retry_delay_s, s.jobs_misfire_grace_hours, s.alerts_new_drift_threshold) == (
        "Europe/Berlin", "15 1 * * *", "0 5 * * 6", 4, 1.5, 2.0, 10)
    assert s.alerts_webhook_url.get() == "https://hooks.example.com/T000/B000/XXXX"
    assert (s.sync_max_rows_per_key, s.sync_batch_threshold, s.sync_catalog_min_rows,
            s.sync_catalog_max_shrink) == (100, 20, 5, 0.25)
    assert s.snapshots_keep_days == 14.0
    assert "XXXX" not in json.dumps(s.describe()), "a webhook URL is a secret"
    assert (s.callouts_host, s.callouts_port, s.callouts_metrics_port, s.callouts_user,
            s.callouts_max_body_bytes, s.callouts_debounce_catalog_s, s.callouts_max_attempts,
            s.sync_batch_threshold, s.zuora_budget_concurrency) == (
        "0.0.0.0", 9000, 0, "zuora", 4096, 60.0, 7, 20, 4)
    assert (s.callouts_password.get(), s.callouts_hmac_secret.get()) == ("callout-pw",
                                                                         "hmac-key")
    assert "callout-pw" not in json.dumps(s.describe()), "the callout password is a secret"
    assert (s.local_guard_tables, s.repair_allowed_triggers) == (
        "orders, billing_accounts", "orders.app_audit, touch_updated_at")


def test_guard_settings_refuse_a_table_without_anything_to_guard(tmp_path: Path) -> None:
    """A typo in local.guard_tables must not leave a table silently unguarded."""
    for name, why in (("customers", "no Zuora-owned or derived column"),
                      ("zuora_local_subscriptions", "read-only as a whole already"),
                      ("order", "no such table")):
        with pytest.raises(ConfigError, match=f"local.guard_tables.*{name}.*{why}"):
            load_settings(None, env={"RECON_LOCAL_GUARD_TABLES": f"orders, {name}"})
    with pytest.raises(ConfigError, match="repair.allowed_triggers.*not a trigger name"):
        load_settings(None, env={"RECON_REPAIR_ALLOWED_TRIGGERS": "orders.audit; DROP"})
    toml = write(tmp_path, '[local]\nguard_tables = ["orders", "billing_accounts"]\n')
    assert load_settings(toml, env={}).local_guard_tables == "orders, billing_accounts"


def test_bad_extract_settings_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="extract mode"):
        load_settings(None, env={"RECON_EXTRACT_MODE": "sometimes"})
    with pytest.raises(ConfigError, match="must be a number"):
        load_settings(None, env={"RECON_EXTRACT_LAG_HOURS": "two"})
    with pytest.raises(ConfigError, match="grace_hours"):
        load_settings(None, env={"RECON_RECONCILE_GRACE_HOURS": "-1"})
    with pytest.raises(ConfigError, match="5-field cron"):
        load_settings(None, env={"RECON_SCHEDULE_NIGHTLY": "every night"})
    with pytest.raises(ConfigError, match="schedule.timezone"):
        load_settings(None, env={"RECON_SCHEDULE_TIMEZONE": "Mars/Olympus"})
    with pytest.raises(ConfigError, match="repair.auto"):
        load_settings(None, env={"RECON_REPAIR_AUTO": "sometimes"})
    with pytest.raises(ConfigError, match="max_volume_drop"):
        load_settings(None, env={"RECON_VALIDATE_MAX_VOLUME_DROP": "1.5"})
    with pytest.raises(ConfigError, match="max_quarantine_share"):
        load_settings(None, env={"RECON_VALIDATE_MAX_QUARANTINE_SHARE": "-0.1"})
    assert load_settings(None, env={}).validate_max_quarantine_share == 0.01  # the default


def test_explicit_overrides_beat_env_and_none_means_not_given(tmp_path: Path) -> None:
    s = load_settings(
        write(tmp_path, FULL_TOML),
        env={"RECON_ZUORA_CLIENT_ID": "env-client", "RECON_TENANT_TZ": "UTC"},
        zuora_client_id="flag-client",
        tenant_tz=None,
    )
    assert s.zuora_client_id == "flag-client"
    assert s.tenant_tz == "UTC"


def test_explicit_missing_config_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="nope.toml"):
        load_settings(missing, env={})
    with pytest.raises(ConfigError, match="nope.toml"):
        load_settings(env={"RECON_CONFIG": str(missing)})


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[zuora\nbase_url = 1"), env={})


def test_unknown_key_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[zuora]\nbase_ulr = "http://typo"\n')
    with pytest.raises(ConfigError, match=r"zuora\.base_ulr"):
        load_settings(path, env={})


def test_key_outside_a_section_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="base_url"):
        load_settings(write(tmp_path, 'base_url = "http://x"\n'), env={})


def test_non_string_value_is_an_error_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="zuora_base_url"):
        load_settings(write(tmp_path, "[zuora]\nbase_url = 8808\n"), env={})


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "../../etc/passwd", "PST8PDTX"])
def test_bad_time_zone_names_the_setting(tmp_path: Path, tz: str) -> None:
    with pytest.raises(ConfigError, match="tenant_tz"):
        load_settings(env={"RECON_TENANT_TZ": tz})
    with pytest.raises(ConfigError, match="tenant_tz"):
        load_settings(write(tmp_path, f'[zuora]\ntenant_tz = "{tz}"\n'), env={})


@pytest.mark.parametrize("url", ["mysql://u:hunter2@h/db", "sqlite:///x.db", "data/local.duckdb"])
def test_bad_database_url_scheme_names_the_setting_without_the_password(url: str) -> None:
    with pytest.raises(ConfigError, match="local_database_url") as err:
        load_settings(env={"RECON_LOCAL_DATABASE_URL": url})
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize(
    "url", ["duckdb:///data/x.duckdb", "postgresql://u@h/db", "postgres://u:p@h:5433/db"]
)
def test_supported_database_urls_are_accepted(url: str) -> None:
    assert load_settings(env={"RECON_LOCAL_DATABASE_URL": url}).local_database_url == url


def test_secret_never_reveals_its_value() -> None:
    secret = Secret("s3cr3t-value")
    assert secret.get() == "s3cr3t-value"
    for shown in (repr(secret), str(secret), f"{secret}", f"{secret!r}", format(secret)):
        assert "s3cr3t-value" not in shown
    assert bool(secret) and not Secret(None) and not Secret("")


def test_settings_repr_and_describe_hide_secrets() -> None:
    s = load_settings(
        env={
            "RECON_ZUORA_CLIENT_SECRET": "s3cr3t-value",
            "RECON_LOCAL_DATABASE_URL": "postgresql://recon:db-pa55@db.example/cdot",
        }
    )
    assert s.zuora_client_secret.get() == "s3cr3t-value"
    described = s.describe()
    assert described["zuora_client_secret"] == "set"
    assert described["local_database_url"] == "postgresql://recon:***@db.example/cdot"
    for text in (repr(s), str(s), str(described)):
        assert "s3cr3t-value" not in text
    assert "db-pa55" not in str(described)
    assert load_settings(env={}).describe()["zuora_client_secret"] == "not set"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://recon:pa55@db.example:5432/cdot",
         "postgresql://recon:***@db.example:5432/cdot"),
        ("postgresql://recon:p%40ss@db/cdot?sslmode=require",
         "postgresql://recon:***@db/cdot?sslmode=require"),
        ("postgresql://recon@db/cdot", "postgresql://recon@db/cdot"),
        ("duckdb:///data/local.duckdb", "duckdb:///data/local.duckdb"),
        # libpq also takes the password as a query parameter
        ("postgresql://recon@db/cdot?password=s3cret&sslmode=require",
         "postgresql://recon@db/cdot?password=***&sslmode=require"),
        ("postgresql://recon@db/cdot?sslmode=require&sslpassword=k3y",
         "postgresql://recon@db/cdot?sslmode=require&sslpassword=***"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_client_secret_file_is_read_and_stripped(tmp_path: Path) -> None:
    secret_file = tmp_path / "zuora-secret"
    secret_file.write_text("from-file\n")
    path = write(tmp_path, f'[zuora]\nclient_secret_file = "{secret_file.as_posix()}"\n')
    assert load_settings(path, env={}).zuora_client_secret.get() == "from-file"
    # the environment still wins over the file
    env = {"RECON_ZUORA_CLIENT_SECRET": "from-env"}
    assert load_settings(path, env=env).zuora_client_secret.get() == "from-env"


# -- README's table is the declaration, row for row ---------------------------------------------
def readme_settings_rows() -> list[list[str]]:
    """The cells of the settings table (docs/configuration.md), header excluded."""
    text = (REPO / "docs" / "configuration.md").read_text()
    section = text[text.index("\n## Configuration\n"):]
    if "\n## " in section[1:]:
        section = section[:section.index("\n## ", 1)]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    assert lines[0].startswith("| setting | TOML key | environment | default |"), lines[0]
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines[2:]]


def documented_default(spec: SettingSpec, cell: str) -> bool:
    if spec.secret:
        return cell == "none" and not spec.default
    shown = re.match(r"`([^`]*)`", cell)
    assert shown, f"default of {spec.key} in README is not in backticks: {cell!r}"
    if spec.type in (int, float):
        return spec.type(shown.group(1)) == spec.default
    return shown.group(1) == spec.show(spec.default)


def test_readme_settings_table_matches_the_declaration() -> None:
    rows = readme_settings_rows()
    by_key = {s.key: s for s in SETTINGS}
    documented = []
    for help_text, keys, env, default in rows:
        names = re.findall(r"`([^`]+)`", keys)
        spec = by_key.get(names[0])
        assert spec is not None, f"README documents {names[0]}, which is not declared"
        documented.append(spec.key)
        assert names[1:] == ([spec.file_key] if spec.file_key else []), keys
        assert env == f"`{spec.env}`", f"{spec.key}: README says {env}, declared {spec.env}"
        assert help_text == spec.help, f"{spec.key}: README says {help_text!r}"
        assert documented_default(spec, default), \
            f"{spec.key}: README default {default!r}, declared {spec.default!r}"
    assert documented == [s.key for s in SETTINGS], "README: one row per setting, in order"
    assert len(rows) == len(SETTINGS) == len(ENV_VARS) == 63


def test_the_example_config_sets_exactly_the_defaults(tmp_path: Path) -> None:
    example = REPO / "recon.example.toml"
    loaded = load_settings(example, env={})
    assert loaded == Settings() and loaded.describe() == Settings().describe()  # 2 prints "2.0"
    sources = {r.setting: r.source for r in explain_settings(example, env={})}
    assert sources["schedule_nightly"] == f"file:{example}"
    assert sources["zuora_client_secret"] == "default"  # commented out: a secret stays unset


# -- where each value came from (`recon config show`) -------------------------------------------
def test_each_value_says_where_it_came_from(tmp_path: Path) -> None:
    path = write(tmp_path, FULL_TOML + '[jobs]\nretries = 5\n')
    rows = {r.setting: r for r in explain_settings(
        path, env={"RECON_ZUORA_CLIENT_ID": "env-client", "RECON_TENANT_TZ": "",
                   "RECON_JOBS_RETRIES": "3", "recon_repair_batch_size": "7"},
        jobs_retries=4, repair_auto=None)}
    assert (rows["zuora_client_id"].value, rows["zuora_client_id"].source) == (
        "env-client", "env:RECON_ZUORA_CLIENT_ID")
    # an empty variable is unset: the file's value stands
    assert (rows["tenant_tz"].value, rows["tenant_tz"].source) == (
        "Europe/Berlin", f"file:{path}")
    assert (rows["jobs_retries"].value, rows["jobs_retries"].source) == ("4", "flag")
    assert (rows["repair_auto"].value, rows["repair_auto"].source) == ("false", "default")
    # only the README spelling of a variable counts
    assert (rows["repair_batch_size"].value, rows["repair_batch_size"].source) == (
        "1000", "default")
    assert rows["zuora_client_secret"].value == "set"
    assert rows["local_database_url"].value == "postgresql://recon:***@db.example:5432/cdot"
    assert "file-secret" not in repr(rows) and "file-pw" not in repr(rows)
    r = rows["data_dir"]
    assert (r.key, r.env, r.value, r.source) == (
        "paths.data_dir", "RECON_DATA_DIR", "/srv/recon", f"file:{path}")
    assert [r.setting for r in explain_settings(env={})] == [s.name for s in SETTINGS]


def test_the_secret_file_is_named_as_the_source(tmp_path: Path) -> None:
    (tmp_path / "zuora-secret").write_text("from-file\n")
    path = write(tmp_path, '[zuora]\nclient_secret_file = "zuora-secret"\n')  # relative
    (row,) = [r for r in explain_settings(path, env={}) if r.setting == "zuora_client_secret"]
    assert (row.value, row.source) == ("set", f"file:{path}")
    with pytest.raises(ConfigError, match="zuora.client_secret_file"):
        load_settings(write(tmp_path, '[zuora]\nclient_secret_file = "nope"\n', "b.toml"),
                      env={})


# -- cron: refused at load, by APScheduler's own parser -----------------------------------------
@pytest.mark.parametrize("expr", ["61 2 * * *", "30 24 * * *", "0 6 * * 8", "0 6 * *",
                                  "0 6 * * * *", "every night"])
def test_an_invalid_cron_is_refused_at_load_naming_key_and_value(tmp_path: Path,
                                                                 expr: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env={"RECON_SCHEDULE_NIGHTLY": expr})
    assert "schedule.nightly" in str(err.value) and repr(expr) in str(err.value)
    assert "env:RECON_SCHEDULE_NIGHTLY" in str(err.value)
    path = write(tmp_path, f'[schedule]\ncatalog = "{expr}"\n')
    with pytest.raises(ConfigError, match=r"schedule\.catalog") as err:
        load_settings(path, env={})
    assert repr(expr) in str(err.value) and f"file:{path}" in str(err.value)


def test_valid_and_empty_crons_are_accepted(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, '[schedule]\nnightly = "*/15 1-3 * * mon-fri"\n'
                                      'catalog = ""\nfull = "0 4 1 */2 0"\n'), env={})
    assert (s.schedule_nightly, s.schedule_catalog, s.schedule_full) == (
        "*/15 1-3 * * mon-fri", "", "0 4 1 */2 0")


# -- every error names the key and where the value came from, never a secret --------------------
@pytest.mark.parametrize(("env", "named"), [
    ({"RECON_REPAIR_BATCH_SIZE": "0"}, "repair.batch_size"),
    ({"RECON_REPAIR_MAX_PLAN_AGE_HOURS": "0"}, "repair.max_plan_age_hours"),
    ({"RECON_REPAIR_MAX_CHANGE_FRACTION": "0"}, "repair.max_change_fraction"),
    ({"RECON_EXTRACT_FULL_EVERY_DAYS": "0"}, "extract.full_every_days"),
    ({"RECON_EXTRACT_LAG_HOURS": "-1"}, "extract.lag_hours"),
    ({"RECON_REPORT_TREND_RUNS": "0"}, "report.trend_runs"),
    ({"RECON_REPORT_ZUORA_URL_TEMPLATE": "zuora/{object}/{id}"}, "report.zuora_url_template"),
    ({"RECON_JOBS_RETRIES": "-1"}, "jobs.retries"),
    ({"RECON_JOBS_RETRIES": "1.5"}, "jobs.retries"),
    ({"RECON_JOBS_RETRY_DELAY_S": "-1"}, "jobs.retry_delay_s"),
    ({"RECON_JOBS_MISFIRE_GRACE_HOURS": "0"}, "jobs.misfire_grace_hours"),
])
def test_a_bad_value_names_its_key_and_source(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(named)) as err:
        load_settings(env=env)
    assert f"env:{next(iter(env))}" in str(err.value)


def test_errors_never_show_a_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="alerts.webhook_url") as err:
        load_settings(env={"RECON_ALERTS_WEBHOOK_URL": "hooks.example.com/T000/s3cr3t"})
    assert "s3cr3t" not in str(err.value) and err.value.__cause__ is None
    with pytest.raises(ConfigError, match="zuora.client_secret") as err:
        load_settings(write(tmp_path, "[zuora]\nclient_secret = 12345678\n"), env={})
    assert "12345678" not in str(err.value)


def test_an_unknown_flag_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="zuora_base_ulr"):
        load_settings(env={}, zuora_base_ulr="http://typo")


def test_repr_hides_the_database_password_too() -> None:
    s = load_settings(env={"RECON_LOCAL_DATABASE_URL": "postgresql://recon:db-pa55@h/cdot",
                           "RECON_ALERTS_WEBHOOK_URL": "https://hooks.example.com/XXXX"})
    assert "db-pa55" not in repr(s) and "XXXX" not in repr(s) and "XXXX" not in str(s)
    assert "postgresql://recon:***@h/cdot" in repr(s)


def test_settings_built_in_code_stay_a_dataclass_and_can_be_validated() -> None:
    base = Settings(data_dir=Path("/d"), zuora_client_secret=Secret("x"))
    changed = replace(base, jobs_retries=7)  # callers derive variants this way
    assert (changed.jobs_retries, changed.data_dir, changed.zuora_client_secret) == (
        7, Path("/d"), Secret("x"))
    validate(changed)
    with pytest.raises(ConfigError, match=r"schedule\.full"):
        validate(replace(base, schedule_full="0 4 * * 9"))
    with pytest.raises(ConfigError, match=r"repair\.batch_size"):
        validate(replace(base, repair_batch_size=0))


def test_owners_table_in_toml_and_env_and_its_webhooks_stay_secret(tmp_path: Path) -> None:
    """``[owners]``: rule.<D-id>, object.<name>, default and webhook.<owner> (issue 17); the
    precedence rule > object > likely drift > default; a bad name or URL names the key, and a
    webhook URL is never printed."""
    import polars as pl

    from core.owners import Owners

    hook = "https://hooks.example/T0/B0/own3r-t0ken"
    path = write(tmp_path, '[owners]\ndefault = "data-eng"\nrule.D22 = "catalog-team"\n'
                 'rule.D05 = "tz"\nobject.Subscription = "billing"\nobject.orders = "crm"\n'
                 f'webhook.billing = "{hook}"\n')
    s = load_settings(path, env={})
    owners = Owners.of(s)
    assert owners.rules == {"D22": "catalog-team", "D05": "tz"} and owners.default == "data-eng"
    assert owners.webhook("billing").get() == hook and not owners.webhook("tz")
    for text in (repr(s), str(s.describe()), str([r.value for r in explain_settings(path,
                                                                                 env={})])):
        assert "own3r-t0ken" not in text
    f = pl.DataFrame({"object": ["Subscription", "Subscription", "ProductRatePlan", "Account"],
                      "rule": ["D22", None, None, None], "drift_id": [None, "D05", "D05", None]})
    assert f.select(owners.expr())["owner"].to_list() == ["catalog-team", "billing", "tz",
                                                          "data-eng"]
    env = load_settings(env={"RECON_OWNERS_OBJECT": '{"Contact": "crm"}'})
    assert Owners.of(env).objects == {"Contact": "crm"}
    for toml, says in (('[owners]\nrule.D5 = "x"\n', "rule.D5"),
                       ('[owners]\nobject.Nope = "x"\n', "object.Nope"),
                       ('[owners]\ndefault = "two words"\n', "owners.default"),
                       ('[owners]\nwebhook.x = "ftp://secret-host/t0k"\n', "webhook.x")):
        with pytest.raises(ConfigError, match=re.escape(says)) as e:
            load_settings(write(tmp_path, toml, "bad.toml"), env={})
        assert "secret-host" not in str(e.value)
