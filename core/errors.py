"""Typed errors. Every message names the thing that is wrong and what to do about it, so that
an engineer woken at 3 a.m. can act on it without reading the code."""

from __future__ import annotations


class ReconError(Exception):
    """Base class: any error recon raises on purpose. The CLI maps it to exit code 2."""


class ConfigError(ReconError):
    """Configuration is missing or invalid (file, env var, or flag)."""


class CatalogError(ReconError):
    """The object catalogue was asked for something it does not declare."""


class DatasetError(ReconError):
    """A dataset directory (the sandbox's input format) is missing a file or malformed."""


class LocalDatabaseError(ReconError):
    """The local database URL is unsupported or the database refused an operation."""
