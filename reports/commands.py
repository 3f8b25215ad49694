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

from pathlib import Path

from core.commands import CommandContext, duckdb_absolute
from core.config import Settings

__all__ = ["context", "duckdb_absolute", "prefix", "recon"]


def context(settings: Settings, config_file: Path | str | None = None) -> CommandContext:
    """The run's data directory (absolute) and, for a DuckDB file, its absolute URL, as
    ``RECON_*`` variables in front; the config file when the report knows it."""
    env = {"RECON_DATA_DIR": Path(settings.data_dir).resolve().as_posix()}
    duck = duckdb_absolute(settings.local_database_url)
    if duck:
        env["RECON_LOCAL_DATABASE_URL"] = duck
    return CommandContext(Path(config_file) if config_file else None, env)


def prefix(settings: Settings, config_file: Path | str | None = None) -> str:
    """``RECON_DATA_DIR=… [RECON_LOCAL_DATABASE_URL=…] recon [--config FILE]``."""
    return context(settings, config_file).command()


def recon(settings: Settings, *args: str | Path, config_file: Path | str | None = None) -> str:
    """One pasteable command line: the prefix, then ``args`` (paths made absolute and every
    word shell-quoted)."""
    return context(settings, config_file).command(*args)
