"""Who owns a finding: ``[owners]`` in recon.toml, read once here for the report and the alerts.

::

    [owners]
    default = "data-eng"                 # a finding nothing below names
    rule.D22 = "catalog-team"            # by rule, or by the drift a row difference likely is
    object.Subscription = "billing"      # by object (or local table: orders, customers, ...)
    webhook.catalog-team = "https://hooks.example/..."   # optional, a secret

The first match wins: ``rule.<rule>`` (a cross-object rule finding), ``object.<object>``,
``rule.<drift_id>`` (the drift a row or field difference most likely is), ``default``. A rule
named explicitly is the most specific statement; a likely drift is a guess, so the object
comes before it. The owner is computed set-wise (:meth:`Owners.expr`, one polars expression
over the findings frame), never in a loop per finding.

Webhook URLs are secrets (they carry tokens): they stay inside :class:`core.config.Secret`
until :meth:`Owners.webhook` hands one to the sender, and are never printed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import polars as pl

from core.config import Secret, Settings


@dataclass(frozen=True)
class Owners:
    """The ``[owners]`` table, parsed (the settings checked it at load)."""

    default: str | None = None
    rules: dict[str, str] = field(default_factory=dict)
    objects: dict[str, str] = field(default_factory=dict)
    webhooks: Secret = field(default_factory=lambda: Secret(None))

    @classmethod
    def of(cls, settings: Settings) -> Owners:
        return cls(default=settings.owners_default or None,
                   rules=json.loads(settings.owners_rule) if settings.owners_rule else {},
                   objects=json.loads(settings.owners_object) if settings.owners_object
                   else {},
                   webhooks=settings.owners_webhook)

    @property
    def configured(self) -> bool:
        return bool(self.default or self.rules or self.objects)

    def expr(self) -> pl.Expr:
        """The owner of each finding (a frame with ``object``, ``rule``, ``drift_id``), as a
        String expression (null: nobody is named)."""
        def lookup(col: str, table: dict[str, str]) -> pl.Expr:
            if not table:
                return pl.lit(None, dtype=pl.String)
            return pl.col(col).replace_strict(table, default=None, return_dtype=pl.String)

        return pl.coalesce(lookup("rule", self.rules), lookup("object", self.objects),
                           lookup("drift_id", self.rules),
                           pl.lit(self.default, dtype=pl.String)).alias("owner")

    def owner_of(self, obj: str | None, rule: str | None, drift_id: str | None) -> str | None:
        """The same rule for one finding (the CLI's messages)."""
        return (self.rules.get(rule or "") or self.objects.get(obj or "")
                or self.rules.get(drift_id or "") or self.default)

    def webhook(self, owner: str) -> Secret:
        """The owner's own webhook (``Secret(None)`` when it has none)."""
        text = self.webhooks.get()
        if not text:
            return Secret(None)
        return Secret(json.loads(text).get(owner))

    def with_webhooks(self) -> list[str]:
        """Owners that have a webhook of their own (names only: the URLs are secrets)."""
        text = self.webhooks.get()
        return sorted(json.loads(text)) if text else []
