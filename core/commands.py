"""The ``recon …`` command lines recon prints for a person to paste, built in one place.

A printed command must work when pasted, from any directory, for the run it came from: paths
are absolute, the config file the command ran with is passed on (``--config``), and anything
the printing command knew that a fresh one would not (the demo's data directory) is given
explicitly, as a flag or a ``RECON_*`` variable in front. Values are shell-quoted. A
password is never part of a printed command: callers pass URLs that carry none (a DuckDB
file, or a name the reader supplies).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


def duckdb_absolute(url: str) -> str | None:
    """``duckdb:///rel/x.duckdb`` → ``duckdb:////abs/rel/x.duckdb`` (None: not a DuckDB
    file URL, e.g. PostgreSQL or ``:memory:``): the one kind of database URL a printed
    command may carry, since it holds no secret."""
    from core.localdb.dialect import Dialect, duckdb_path

    if Dialect.from_url(url) is not Dialect.DUCKDB:
        return None
    path = duckdb_path(url)
    if not path or path == ":memory:":
        return None
    return "duckdb:///" + Path(path).resolve().as_posix()


def _text(v: str | Path) -> str:
    return str(v.resolve()) if isinstance(v, Path) else str(v)


@dataclass(frozen=True)
class CommandContext:
    """What every printed command of one invocation shares: the config file it ran with
    (None: the defaults, $RECON_CONFIG or ./recon.toml, which a pasted command finds the same
    way) and environment variables to set in front (e.g. ``RECON_DATA_DIR``)."""

    config: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    def command(self, *argv: str | Path) -> str:
        """``recon [--config FILE] ARGV…`` with ``env`` in front, shell-quoted; a Path is
        made absolute."""
        parts = [f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items())]
        parts.append("recon")
        if self.config is not None:
            parts += ["--config", shlex.quote(_text(self.config))]
        parts += [shlex.quote(_text(a)) for a in argv]
        return " ".join(parts)


def recon_command(*argv: str | Path, config: Path | None = None,
                  env: Mapping[str, str] | None = None) -> str:
    """One printed command (see :class:`CommandContext`)."""
    return CommandContext(config, dict(env or {})).command(*argv)


def split_command(text: str) -> tuple[dict[str, str], list[str]]:
    """A printed command back into (environment, argv after ``recon``): what a test does to
    run exactly what was printed."""
    words = shlex.split(text)
    env: dict[str, str] = {}
    while words and "=" in words[0] and not words[0].startswith("-"):
        k, _, v = words.pop(0).partition("=")
        env[k] = v
    if not words or words[0] != "recon":
        raise ValueError(f"not a recon command: {text!r}")
    return env, words[1:]
