"""Catalog scopes (seed 004, iterations 2–3): the one declaration of how a product rate plan is
classified from the catalog's own metadata, instead of hard-coded plan id constants.

Seed 004 moves CustomersDot's classification into Zuora custom fields — ``Product.Category``,
``Product.Tier__c`` and ``Product.DeploymentType__c`` (multiselects) and
``ProductRatePlan.WebDirect__c`` — and resolves sets of plans through named scopes
(``self_managed``, ``premium``, ``active``…). This module declares, once:

* :data:`SCOPES`: each scope's name (the seed's), its doc, and the test it applies to a plan,
  rendered as SQL by :meth:`Scope.sql`;
* :data:`PROBLEMS`: why a plan cannot be classified (missing or contradicting metadata), the
  reasons rule D22 reports;
* :func:`plan_classification_sql`: one row per plan with its classification, each scope as a
  boolean column and the problems as text.

Every SQL string here is written over a :class:`Naming` — the Zuora export (``zuora.Product``
with Zuora field names, read by the reconciler's D22 rule in DuckDB) or the local catalog
cache (``zuora_local_products`` with the catalogue's local column names, read by the views
``recon db init`` creates and by ``recon catalog plans``) — and uses only SQL PostgreSQL and
DuckDB both run (``regexp_replace`` with the ``g`` flag, ``strpos``, ``concat_ws``), so the
reconciler, the views and the Python API cannot disagree on what a plan is.

Multiselect values (``premium;ultimate``) are read as the catalogue's ``Norm.MULTISELECT``
reads them: split on ``;``, each value trimmed of spaces and lower-cased, blanks ignored.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass

from core.catalog.model import Norm
from core.catalog.objects import PRODUCT, PRODUCT_RATE_PLAN
from core.errors import CatalogError

PRODUCT_OBJ, PLAN_OBJ = PRODUCT.name, PRODUCT_RATE_PLAN.name
# Product.Category values (seed 004) and the short names the views show for them
BASE, ADD_ON, MISC = "Base Products", "Add On Services", "Miscellaneous Products"
CATEGORY_KIND = {BASE: "base", ADD_ON: "add_on", MISC: "miscellaneous"}
FOREVER = "9999-12-31"  # a plan without EffectiveEndDate never ends (D22's "current")


# -- naming: which catalog the SQL reads --------------------------------------------------------
@dataclass(frozen=True)
class Naming:
    """How one copy of the catalog spells its tables and columns. ``alias`` of a product is
    ``p``, of a plan ``prp`` in every query rendered here."""

    products: str  # table holding Product rows
    plans: str  # table holding ProductRatePlan rows
    local: bool  # True: the catalogue's local column names; False: Zuora field names

    def col(self, obj: str, field: str) -> str:
        """``p.<column>`` / ``prp.<column>`` for a catalogue field; a typo is a CatalogError."""
        spec = {PRODUCT_OBJ: PRODUCT, PLAN_OBJ: PRODUCT_RATE_PLAN}[obj]
        f = spec.field(field)
        name = f.column if self.local else f.name
        if name is None:
            raise CatalogError(f"{obj}.{field} is not stored in the local catalog cache")
        return f"{'p' if obj == PRODUCT_OBJ else 'prp'}.{name}"

    def source(self) -> str:
        """Every plan with its product (NULLs when the product is missing)."""
        return (f"{self.plans} prp LEFT JOIN {self.products} p "
                f"ON {self.col(PRODUCT_OBJ, 'Id')} = {self.col(PLAN_OBJ, 'ProductId')}")


ZUORA = Naming(products="zuora.Product", plans="zuora.ProductRatePlan", local=False)
LOCAL = Naming(products=PRODUCT.table, plans=PRODUCT_RATE_PLAN.table, local=True)


# -- multiselect values, in portable SQL ---------------------------------------------------------
def value_set(expr: str) -> str:
    """``expr`` (``' Premium ; ultimate'``) as ``;premium;ultimate;`` — values trimmed of
    spaces, lower-cased, blanks dropped, framed by ``;`` — or ``;`` when it holds none, so a
    value is tested with ``strpos(set, ';v;')`` and counted by its separators."""
    inner = f"regexp_replace(lower(trim(coalesce({expr}, ''))), ' *; *', ';', 'g')"
    return f"regexp_replace(';' || {inner} || ';', ';+', ';', 'g')"


def has_value(expr: str, value: str) -> str:
    return f"(strpos({value_set(expr)}, ';{value};') > 0)"


def value_count(expr: str) -> str:
    s = value_set(expr)
    return f"(length({s}) - length(replace({s}, ';', '')) - 1)"


def has_unknown_value(expr: str, allowed: tuple[str, ...]) -> str:
    """Whether ``expr`` holds a value outside ``allowed``: every allowed value is removed
    (each value framed by its own ``;`` so neighbours do not share one) and anything but
    separators left is unknown."""
    s = value_set(expr)
    known = "|".join(allowed)
    return (f"(replace(regexp_replace(replace({s}, ';', ';;'), ';({known});', '', 'g'), "
            "';', '') <> '')")


def value_list(expr: str) -> str:
    """The values as ``premium;ultimate`` (NULL when none): what the views show."""
    return f"NULLIF(regexp_replace({value_set(expr)}, '^;|;$', '', 'g'), '')"


_PLAIN = re.compile(r"^[a-z_]+$")


def _multiselect(obj: str, field: str) -> tuple[str, ...]:
    spec = {PRODUCT_OBJ: PRODUCT, PLAN_OBJ: PRODUCT_RATE_PLAN}[obj]
    f = spec.field(field)
    if f.norm is not Norm.MULTISELECT or not all(_PLAIN.match(v) for v in f.enum):
        raise CatalogError(f"{obj}.{field} is not a multiselect of plain lower-case values; "
                           "a scope cannot test its values")
    return f.enum


# -- scopes ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scope:
    """One named set of plans (seed 004 iteration 3). ``test`` renders the SQL predicate over a
    naming (and, for a dated scope, the date literal); :meth:`sql` is what callers use.
    Scopes compose with ``&`` into a :class:`Scopes` (all must hold)."""

    name: str
    doc: str
    test: Callable[[Naming, str | None], str]
    dated: bool = False

    def sql(self, naming: Naming, as_of: dt.date | None = None) -> str:
        if self.dated and as_of is None:
            raise CatalogError(f"scope {self.name!r} needs a date (as_of)")
        return self.test(naming, _date(as_of) if as_of is not None else None)

    def __and__(self, other: Scope | Scopes) -> Scopes:
        return Scopes((self,)) & other


@dataclass(frozen=True)
class Scopes:
    """A conjunction of scopes: ``SCOPE['self_managed'] & SCOPE['premium']``."""

    members: tuple[Scope, ...]

    def __and__(self, other: Scope | Scopes) -> Scopes:
        more = other.members if isinstance(other, Scopes) else (other,)
        return Scopes(self.members + tuple(s for s in more if s not in self.members))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.members)

    @property
    def dated(self) -> bool:
        return any(s.dated for s in self.members)

    def sql(self, naming: Naming, as_of: dt.date | None = None) -> str:
        """All members' predicates (``TRUE`` for no scope: every plan)."""
        return " AND ".join(f"({s.sql(naming, as_of)})" for s in self.members) or "TRUE"


def _date(d: dt.date) -> str:
    """A date literal (a datetime would carry a zone question: the caller decides the day)."""
    if isinstance(d, dt.datetime) or not isinstance(d, dt.date):
        raise CatalogError(f"a scope's date must be a calendar date, not {d!r}")
    return f"DATE '{d.isoformat()}'"


def _in_set(obj: str, field: str, value: str) -> Callable[[Naming, str | None], str]:
    if value not in _multiselect(obj, field):
        raise CatalogError(f"{obj}.{field} does not allow {value!r}")
    return lambda n, _d: f"coalesce({has_value(n.col(obj, field), value)}, false)"


def _category(value: str) -> Callable[[Naming, str | None], str]:
    if value not in PRODUCT.field("Category").enum:
        raise CatalogError(f"Product.Category does not allow {value!r}")
    return lambda n, _d: f"coalesce({n.col(PRODUCT_OBJ, 'Category')} = '{value}', false)"


def _web_direct(value: bool) -> Callable[[Naming, str | None], str]:
    lit = "true" if value else "false"
    return lambda n, _d: f"coalesce({n.col(PLAN_OBJ, 'WebDirect__c')} = {lit}, false)"


def _active(n: Naming, d: str | None) -> str:
    start, end = n.col(PLAN_OBJ, "EffectiveStartDate"), n.col(PLAN_OBJ, "EffectiveEndDate")
    return f"({start} <= {d} AND {d} < {end})"


# The seed's scopes, in its order. A plan whose metadata is missing or contradicting (see
# PROBLEMS) is tested literally — NULL is in no scope — and is also a D22 finding.
SCOPE_LIST: tuple[Scope, ...] = (
    Scope("self_managed", "the product's DeploymentType__c includes self_managed",
          _in_set(PRODUCT_OBJ, "DeploymentType__c", "self_managed")),
    Scope("dedicated", "the product's DeploymentType__c includes dedicated",
          _in_set(PRODUCT_OBJ, "DeploymentType__c", "dedicated")),
    Scope("gitlab_dot_com", "the product's DeploymentType__c includes gitlab_dot_com",
          _in_set(PRODUCT_OBJ, "DeploymentType__c", "gitlab_dot_com")),
    Scope("base_products", "the product's Category is 'Base Products'", _category(BASE)),
    Scope("add_ons", "the product's Category is 'Add On Services'", _category(ADD_ON)),
    Scope("web_direct", "the plan's WebDirect__c is true: sold self-service",
          _web_direct(True)),
    Scope("sales_assisted", "the plan's WebDirect__c is false: sold by sales (NULL is "
          "neither web_direct nor sales_assisted, and a D22 finding)", _web_direct(False)),
    Scope("ultimate", "the product's Tier__c includes ultimate",
          _in_set(PRODUCT_OBJ, "Tier__c", "ultimate")),
    Scope("premium", "the product's Tier__c includes premium",
          _in_set(PRODUCT_OBJ, "Tier__c", "premium")),
    Scope("active", "the plan is in effect on the date D (the tenant zone's today unless "
          "given): EffectiveStartDate <= D < EffectiveEndDate", _active, dated=True),
)
SCOPE: dict[str, Scope] = {s.name: s for s in SCOPE_LIST}
NAMES: tuple[str, ...] = tuple(SCOPE)


def scopes(*items: str | Scope | Scopes) -> Scopes:
    """The conjunction of ``items`` (scope names, scopes, conjunctions); an unknown name is a
    :class:`CatalogError` naming the known ones."""
    out = Scopes(())
    for item in items:
        if isinstance(item, str):
            if item not in SCOPE:
                raise CatalogError(f"unknown catalog scope {item!r}; the known scopes are: "
                                   f"{', '.join(NAMES)}")
            item = SCOPE[item]
        out = out & item
    return out


# -- why a plan cannot be classified (rule D22) ----------------------------------------------------
def _problems(n: Naming) -> list[tuple[str, str]]:
    """(condition, reason) in the order findings list them."""
    pid, cat = n.col(PRODUCT_OBJ, "Id"), n.col(PRODUCT_OBJ, "Category")
    tier, dep = n.col(PRODUCT_OBJ, "Tier__c"), n.col(PRODUCT_OBJ, "DeploymentType__c")
    sold = f"{cat} IN ('{BASE}', '{ADD_ON}')"
    return [
        (f"{pid} IS NULL", "its product is not in the catalog"),
        (f"{pid} IS NOT NULL AND {cat} IS NULL", "product Category is empty"),
        (f"{sold} AND {value_count(tier)} = 0", "product Tier__c is empty"),
        (f"{sold} AND {value_count(dep)} = 0", "product DeploymentType__c is empty"),
        (f"{n.col(PLAN_OBJ, 'WebDirect__c')} IS NULL", "plan WebDirect__c is empty"),
        (has_unknown_value(tier, _multiselect(PRODUCT_OBJ, "Tier__c")),
         "product Tier__c has a value outside the allowed tiers"),
        (has_unknown_value(dep, _multiselect(PRODUCT_OBJ, "DeploymentType__c")),
         "product DeploymentType__c has a value outside the allowed deployment types"),
        (f"{cat} = '{BASE}' AND ({value_count(tier)} > 1 OR {value_count(dep)} > 1)",
         "a base product must have exactly one tier and one deployment type"),
    ]


PROBLEMS: tuple[str, ...] = tuple(reason for _, reason in _problems(LOCAL))


def problems_sql(n: Naming) -> str:
    """Text: the reasons a plan cannot be classified, ``'; '``-joined in :data:`PROBLEMS`
    order, or NULL when it can: its product is missing; Category empty; a Base Products or
    Add On Services product without a tier or a deployment type; the plan's WebDirect__c
    empty; a value outside seed 004's enums; a base product with several tiers or deployment
    types (it contradicts itself: one base plan sells one tier on one deployment)."""
    arms = ", ".join(f"CASE WHEN {cond} THEN '{why}' END" for cond, why in _problems(n))
    return f"NULLIF(concat_ws('; ', {arms}), '')"


def current_sql(n: Naming, as_of: str) -> str:
    """D22's "current" plan: not retired by ``as_of`` (an SQL date expression); plans that
    start later count, since CustomersDot must know them before they go on sale."""
    return f"coalesce({n.col(PLAN_OBJ, 'EffectiveEndDate')}, DATE '{FOREVER}') > {as_of}"


# -- one row per plan --------------------------------------------------------------------------------
def plan_classification_sql(n: Naming, where: str | None = None) -> str:
    """SELECT: one row per product rate plan (those ``where`` holds for, if given) — its ids
    and names, the product's category (raw and as ``base``/``add_on``/``miscellaneous``), tier
    and deployment values, the plan's WebDirect__c and effective dates, a boolean column per
    undated scope, and ``problems``."""
    cat = n.col(PRODUCT_OBJ, "Category")
    kind = " ".join(f"WHEN '{v}' THEN '{k}'" for v, k in CATEGORY_KIND.items())
    scope_cols = ",\n       ".join(f"{s.sql(n)} AS {s.name}" for s in SCOPE_LIST if not s.dated)
    filt = f"\nWHERE {where}" if where else ""
    return f"""SELECT {n.col(PLAN_OBJ, 'Id')} AS plan_id, {n.col(PLAN_OBJ, 'Name')} AS plan_name,
       {n.col(PLAN_OBJ, 'ProductId')} AS product_id, {n.col(PRODUCT_OBJ, 'Name')} AS product_name,
       {cat} AS category, CASE {cat} {kind} END AS category_kind,
       {value_list(n.col(PRODUCT_OBJ, 'Tier__c'))} AS tiers,
       {value_list(n.col(PRODUCT_OBJ, 'DeploymentType__c'))} AS deployment_types,
       {n.col(PLAN_OBJ, 'WebDirect__c')} AS web_direct__c,
       {n.col(PLAN_OBJ, 'EffectiveStartDate')} AS effective_start_date,
       {n.col(PLAN_OBJ, 'EffectiveEndDate')} AS effective_end_date,
       {scope_cols},
       {problems_sql(n)} AS problems
FROM {n.source()}{filt}"""
