"""Commands the report prints, complete for the run they came from ("commands that work when
pasted", issue 17): real paths, never a ``DATA/…`` placeholder, and what points ``recon`` at
this run's data directory and database.

A printed command starts with the environment that reaches this run's data:
``RECON_DATA_DIR=/abs/data`` (the data directory as an absolute path, so it works from any
directory), plus ``RECON_LOCAL_DATABASE_URL=duckdb:////abs/local.duckdb`` when the local
database is a DuckDB file (an absolute path; no secret in it). A PostgreSQL URL is never
printed (it may carry a password): the command then relies on the ``local.database_url`` of
the configuration named by ``--config`` (when the report knows the file) or of the reader's
own. The environment beats the file (docs/configuration.md "Configuration"), so the data directory of the
prefix wins over the file's.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from core.config import Settings
from core.localdb.dialect import Dialect, duckdb_path


def duckdb_absolute(url: str) -> str | None:
    """``duckdb:///rel/x.duckdb`` → ``duckdb:////abs/rel/x.duckdb`` (None: not a DuckDB
    file URL, e.g. PostgreSQL or ``:memory:``)."""
    if Dialect.from_url(url) is not Dialect.DUCKDB:
        return None
    path = duckdb_path(url)
    if not path or path == ":memory:":
        return None
    return "duckdb:///" + Path(path).resolve().as_posix()


def prefix(settings: Settings, config_file: Path | str | None = None) -> str:
    """``RECON_DATA_DIR=… [RECON_LOCAL_DATABASE_URL=…] recon [--config FILE]``."""
    env = [f"RECON_DATA_DIR={shlex.quote(Path(settings.data_dir).resolve().as_posix())}"]
    duck = duckdb_absolute(settings.local_database_url)
    if duck:
        env.append(f"RECON_LOCAL_DATABASE_URL={shlex.quote(duck)}")
    words = [*env, "recon"]
    if config_file:
        words += ["--config", shlex.quote(Path(config_file).resolve().as_posix())]
    return " ".join(words)


def recon(settings: Settings, *args: str | Path, config_file: Path | str | None = None) -> str:
    """One pasteable command line: the prefix, then ``args`` (paths made absolute and every
    word shell-quoted)."""
    words = [shlex.quote(Path(a).resolve().as_posix() if isinstance(a, Path) else a)
             for a in args]
    return " ".join([prefix(settings, config_file), *words])
