"""THE catalogue: every reconciled Zuora object, its fields and its local copy.

The extractor (which fields to export), the contracts (types, lengths, enums, nullability),
the diff (which fields, how to normalise), the repair (which side owns what) and the report
all read this module; nothing else restates a field list. Column names, lengths and null rules
of the subscription local copy are exactly seed 003's proposed schema; the catalog cache adds
seed 004's classification fields; the account side follows domain.md §4.2.
"""

from __future__ import annotations

from core.catalog.model import Column, Field, LocalTable, Norm, ObjectSpec, Owner, Ref, ZType

ID64 = "VARCHAR(64)"

# Zuora's spelling on read (docs/zuora-api.md §4). Variants such as "Flat Fee" are accepted by
# the ENUM normalisation, never listed here as separate values.
SUBSCRIPTION_STATUS = (
    "Draft", "Pending Activation", "Pending Acceptance", "Active", "Cancelled", "Expired",
    "Suspended",
)
ACCOUNT_STATUS = ("Draft", "Active", "Canceled")
PERIOD_TYPE = ("Month", "Year", "Day", "Week")
TERM_TYPE = ("TERMED", "EVERGREEN")
CHARGE_TYPE = ("OneTime", "Recurring", "Usage")
CHARGE_MODEL = (
    "Flat Fee Pricing", "Per Unit Pricing", "Overage Pricing", "Volume Pricing",
    "Tiered Pricing", "Tiered with Overage Pricing", "Discount-Fixed Amount",
    "Discount-Percentage",
)
PRICE_FORMAT_SUB = ("Flat Fee", "Per Unit")  # subscription tiers
PRICE_FORMAT_CAT = ("FlatFee", "PerUnit")  # catalog tiers read back without the space
PRICE_CHANGE_OPTION = ("NoChange", "SpecificPercentageValue", "UseLatestProductCatalogPricing")
BILLING_PERIOD = ("Month", "Quarter", "Annual", "Semi-Annual", "Specific Months", "Week")
TRIGGER_EVENT = ("ContractEffective", "ServiceActivation", "CustomerAcceptance", "SpecificDate")
PRODUCT_CATEGORY = ("Base Products", "Add On Services", "Miscellaneous Products")
TIER_VALUES = ("premium", "ultimate", "starter", "bronze", "silver", "gold", "free")
DEPLOYMENT_VALUES = ("self_managed", "dedicated", "gitlab_dot_com")
YES_NO = ("Yes", "No")
CLOUD_LICENSING = ("Yes", "No", "Offline")
AMENDMENT_TYPE = (
    "NewProduct", "UpdateProduct", "RemoveProduct", "Renewal", "TermsAndConditions",
    "Cancellation", "OwnerTransfer", "Composite",
)
LOCAL_STAMPS = (
    Column("created_at", "TIMESTAMP", doc="when the local row was written (local metadata)"),
    Column("updated_at", "TIMESTAMP", doc="when the local row was last written"),
)
LOCAL_STAMPS_NOT_NULL = tuple(
    Column(c.name, c.local_type, nullable=False, doc=c.doc) for c in LOCAL_STAMPS
)


def _id(column: str = "zuora_id") -> Field:
    return Field("Id", ZType.ID, column, ID64, nullable=False, zuora_required=True)


def _audit(stored: bool = True) -> tuple[Field, ...]:
    """CreatedById/CreatedDate/UpdatedById/UpdatedDate, which every Zuora object has."""
    c = (lambda name: name) if stored else (lambda name: None)
    return (
        Field("CreatedById", ZType.ID, c("created_by_id"), ID64 if stored else None,
              nullable=not stored, zuora_required=True),
        Field("CreatedDate", ZType.DATETIME, c("created_date"), "TIMESTAMP" if stored else None,
              nullable=not stored, norm=Norm.DATETIME_UTC, zuora_required=True),
        Field("UpdatedById", ZType.ID, c("updated_by_id"), ID64 if stored else None,
              nullable=not stored, zuora_required=True),
        Field("UpdatedDate", ZType.DATETIME, c("updated_date"), "TIMESTAMP" if stored else None,
              nullable=not stored, norm=Norm.DATETIME_UTC, zuora_required=True),
    )


def _custom(name: str, column: str, length: int, enum: tuple[str, ...] = ()) -> Field:
    return Field(name, ZType.STR, column, f"VARCHAR({length})", norm=Norm.CUSTOM, enum=enum)


def _only(name: str, ztype: ZType, enum: tuple[str, ...] = (), required: bool = False) -> Field:
    """A field recon extracts (rules need it) that the local copy does not store."""
    norm = {ZType.DATETIME: Norm.DATETIME_UTC, ZType.DATE: Norm.DATE}.get(ztype, Norm.EXACT)
    return Field(name, ztype, enum=enum, norm=norm, zuora_required=required)


def _date(name: str, column: str, nullable: bool = True) -> Field:
    return Field(name, ZType.DATE, column, "DATE", nullable=nullable, norm=Norm.DATE)


# --------------------------------------------------------------------------------------------
# Product catalog (seed 004): the cache CustomersDot classifies plans from.
# --------------------------------------------------------------------------------------------
PRODUCT = ObjectSpec(
    name="Product", table="zuora_local_products", group="catalog", local_pk="zuora_id",
    fields=(
        _id(),
        Field("Name", ZType.STR, "name", "VARCHAR(100)", nullable=False, zuora_required=True),
        Field("SKU", ZType.STR, "sku", "VARCHAR(50)", nullable=False, zuora_required=True),
        Field("ProductNumber", ZType.STR, "product_number", "VARCHAR(100)"),
        Field("Category", ZType.STR, "category", "VARCHAR(64)", norm=Norm.ENUM,
              enum=PRODUCT_CATEGORY),
        Field("Description", ZType.STR, "description", "VARCHAR(500)", norm=Norm.CUSTOM),
        _date("EffectiveStartDate", "effective_start_date", nullable=False),
        _date("EffectiveEndDate", "effective_end_date", nullable=False),
        Field("Tier__c", ZType.STR, "tier__c", "VARCHAR(255)", norm=Norm.MULTISELECT,
              enum=TIER_VALUES),
        Field("DeploymentType__c", ZType.STR, "deployment_type__c", "VARCHAR(255)",
              norm=Norm.MULTISELECT, enum=DEPLOYMENT_VALUES),
        *_audit(),
    ),
    extra_columns=LOCAL_STAMPS,
    doc="Zuora Product; classified by Category, Tier__c and DeploymentType__c (seed 004).",
)

PRODUCT_RATE_PLAN = ObjectSpec(
    name="ProductRatePlan", table="zuora_local_product_rate_plans", group="catalog",
    local_pk="zuora_id", parent=("ProductId", "Product"),
    fields=(
        _id(),
        Field("ProductId", ZType.ID, "product_id", ID64, nullable=False, zuora_required=True),
        Field("Name", ZType.STR, "name", "VARCHAR(255)", nullable=False, zuora_required=True),
        Field("Description", ZType.STR, "description", "VARCHAR(500)", norm=Norm.CUSTOM),
        _date("EffectiveStartDate", "effective_start_date", nullable=False),
        _date("EffectiveEndDate", "effective_end_date", nullable=False),
        Field("ProductRatePlanNumber", ZType.STR, "product_rate_plan_number", "VARCHAR(100)"),
        Field("WebDirect__c", ZType.BOOL, "web_direct__c", "BOOLEAN", norm=Norm.BOOL),
        *_audit(),
    ),
    extra_columns=LOCAL_STAMPS,
    doc="Zuora ProductRatePlan; WebDirect__c says whether it is sold self-service (seed 004).",
)

PRODUCT_RATE_PLAN_CHARGE = ObjectSpec(
    name="ProductRatePlanCharge", table="zuora_local_product_rate_plan_charges",
    group="catalog", local_pk="zuora_id", parent=("ProductRatePlanId", "ProductRatePlan"),
    fields=(
        _id(),
        Field("ProductRatePlanId", ZType.ID, "product_rate_plan_id", ID64, nullable=False,
              zuora_required=True),
        Field("Name", ZType.STR, "name", "VARCHAR(100)", nullable=False, zuora_required=True),
        Field("ChargeType", ZType.STR, "charge_type", "VARCHAR(9)", norm=Norm.ENUM,
              enum=CHARGE_TYPE, zuora_required=True),
        Field("ChargeModel", ZType.STR, "charge_model", "VARCHAR(64)", norm=Norm.ENUM,
              enum=CHARGE_MODEL, zuora_required=True),
        Field("BillingPeriod", ZType.STR, "billing_period", "VARCHAR(30)", norm=Norm.ENUM,
              enum=BILLING_PERIOD),
        Field("DefaultQuantity", ZType.DECIMAL, "default_quantity", "DECIMAL(22,9)",
              norm=Norm.DECIMAL),
        Field("UOM", ZType.STR, "uom", "VARCHAR(64)"),
        Field("TriggerEvent", ZType.STR, "trigger_event", "VARCHAR(30)", norm=Norm.ENUM,
              enum=TRIGGER_EVENT),
        Field("PriceChangeOption", ZType.STR, "price_change_option", "VARCHAR(30)",
              norm=Norm.ENUM, enum=PRICE_CHANGE_OPTION),
        Field("ProductRatePlanChargeNumber", ZType.STR, "product_rate_plan_charge_number",
              "VARCHAR(100)"),
        Field("Description", ZType.STR, "description", "VARCHAR(500)", norm=Norm.CUSTOM),
        *_audit(),
    ),
    extra_columns=LOCAL_STAMPS,
)

PRODUCT_RATE_PLAN_CHARGE_TIER = ObjectSpec(
    name="ProductRatePlanChargeTier", table="zuora_local_product_rate_plan_charge_tiers",
    group="catalog", local_pk="zuora_id",
    parent=("ProductRatePlanChargeId", "ProductRatePlanCharge"),
    fields=(
        _id(),
        Field("ProductRatePlanChargeId", ZType.ID, "product_rate_plan_charge_id", ID64,
              nullable=False, zuora_required=True),
        Field("Currency", ZType.STR, "currency", "VARCHAR(3)", nullable=False,
              zuora_required=True),
        Field("Tier", ZType.INT, "tier", "INTEGER", zuora_required=True),
        Field("StartingUnit", ZType.DECIMAL, "starting_unit", "DECIMAL(22,9)", norm=Norm.DECIMAL),
        Field("EndingUnit", ZType.DECIMAL, "ending_unit", "DECIMAL(22,9)", norm=Norm.DECIMAL),
        Field("Price", ZType.DECIMAL, "price", "DECIMAL(18,2)", norm=Norm.DECIMAL,
              zuora_required=True),
        Field("PriceFormat", ZType.STR, "price_format", "VARCHAR(16)", norm=Norm.ENUM,
              enum=PRICE_FORMAT_CAT),
        _only("IsOveragePrice", ZType.BOOL),
        _only("Active", ZType.BOOL),
        *_audit(),
    ),
    extra_columns=LOCAL_STAMPS,
    doc="At least one tier per active currency for every catalog charge (Z16).",
)

# --------------------------------------------------------------------------------------------
# Accounts and their Bill-To / Sold-To contacts (seed 001, domain.md §4.2).
# --------------------------------------------------------------------------------------------
ACCOUNT = ObjectSpec(
    name="Account", table="billing_accounts", group="accounts", local_pk="id",
    unique_local=("zuora_account_id",), row_owner=Owner.LOCAL,
    fields=(
        _id("zuora_account_id"),
        Field("Name", ZType.STR, "zuora_account_name", "VARCHAR(255)", nullable=False,
              zuora_required=True),
        Field("AccountNumber", ZType.STR, "zuora_account_number", "VARCHAR(64)",
              zuora_required=True),
        Field("Status", ZType.STR, "zuora_account_status", "VARCHAR(16)", norm=Norm.ENUM,
              enum=ACCOUNT_STATUS, zuora_required=True),
        Field("Currency", ZType.STR, "currency", "VARCHAR(3)", zuora_required=True),
        Field("CrmId", ZType.STR, "salesforce_account_id", "VARCHAR(64)", norm=Norm.CUSTOM),
        Field("VATId", ZType.STR, "zuora_account_vat_id", "VARCHAR(64)", norm=Norm.CUSTOM),
        _custom("Entity__c", "zuora_account_entity", 64),
        Field("BillToId", ZType.ID, "bill_to_contact_id", "BIGINT", norm=Norm.REF,
              ref=Ref("billing_account_contacts", "id", "zuora_contact_id")),
        Field("SoldToId", ZType.ID, "sold_to_contact_id", "BIGINT", norm=Norm.REF,
              ref=Ref("billing_account_contacts", "id", "zuora_contact_id")),
        _only("BillCycleDay", ZType.INT),
        _only("AutoPay", ZType.BOOL),
        _only("Batch", ZType.STR),
        _only("PaymentTerm", ZType.STR),
        _only("ParentId", ZType.ID),
        *_audit(stored=False),
    ),
    extra_columns=(
        Column("id", "BIGINT", nullable=False, doc="local surrogate key"),
        *LOCAL_STAMPS,
    ),
    doc="A Zuora customer account = a CustomersDot BillingAccount. Bill-To/Sold-To are stored "
    "as references to the local billing_account_contacts rows (seed 001), not as Zuora ids.",
)

CONTACT = ObjectSpec(
    name="Contact", table="billing_account_contacts", group="accounts", local_pk="id",
    unique_local=("zuora_contact_id",),
    zuora_scope="Id IN (SELECT BillToId FROM Account UNION SELECT SoldToId FROM Account)",
    fields=(
        _id("zuora_contact_id"),
        Field("AccountId", ZType.ID, "zuora_account_id", ID64, nullable=False,
              zuora_required=True),
        Field("FirstName", ZType.STR, "first_name", "VARCHAR(100)", zuora_required=True),
        Field("LastName", ZType.STR, "last_name", "VARCHAR(100)", zuora_required=True),
        Field("WorkEmail", ZType.STR, "work_email", "VARCHAR(80)", norm=Norm.EMAIL),
        Field("WorkPhone", ZType.STR, "work_phone", "VARCHAR(40)", norm=Norm.CUSTOM),
        Field("Address1", ZType.STR, "address1", "VARCHAR(255)", norm=Norm.CUSTOM),
        Field("Address2", ZType.STR, "address2", "VARCHAR(255)", norm=Norm.CUSTOM),
        Field("City", ZType.STR, "city", "VARCHAR(40)", norm=Norm.CUSTOM),
        Field("State", ZType.STR, "state", "VARCHAR(40)", norm=Norm.CUSTOM),
        Field("PostalCode", ZType.STR, "postal_code", "VARCHAR(20)", norm=Norm.CUSTOM),
        Field("Country", ZType.STR, "country", "VARCHAR(64)", norm=Norm.CUSTOM),
        _only("PersonalEmail", ZType.STR),
        _only("NickName", ZType.STR),
        _only("Description", ZType.STR),
        *_audit(stored=False),
    ),
    extra_columns=(
        Column("id", "BIGINT", nullable=False, doc="local surrogate key"),
        Column("billing_account_id", "BIGINT", owner=Owner.DERIVED,
               doc="local billing_accounts.id of zuora_account_id"),
        *LOCAL_STAMPS,
    ),
    doc="Only the Bill-To and Sold-To contacts of an account are cached locally (L7); other "
    "Zuora contacts are out of scope (zuora_scope).",
)

# --------------------------------------------------------------------------------------------
# The read-only local copy of subscriptions, all versions (seed 003, exactly its schema).
# --------------------------------------------------------------------------------------------
SUBSCRIPTION = ObjectSpec(
    name="Subscription", table="zuora_local_subscriptions", group="subscriptions",
    local_pk="zuora_id",
    fields=(
        _id(),
        Field("Version", ZType.INT, "version", "INTEGER", nullable=False, zuora_required=True),
        Field("CurrentTerm", ZType.INT, "current_term", "INTEGER"),
        Field("InitialTerm", ZType.INT, "initial_term", "INTEGER"),
        Field("RenewalTerm", ZType.INT, "renewal_term", "INTEGER"),
        _date("TermStartDate", "term_start_date", nullable=False),
        _date("TermEndDate", "term_end_date"),
        _date("CancelledDate", "cancelled_date"),
        _date("SubscriptionStartDate", "subscription_start_date", nullable=False),
        _date("SubscriptionEndDate", "subscription_end_date"),
        Field("AutoRenew", ZType.BOOL, "auto_renew", "BOOLEAN", nullable=False, norm=Norm.BOOL,
              zuora_required=True),
        _custom("EOAStarterBronzeOfferAccepted__c", "eoa_starter_bronze_offer_accepted__c", 3,
                YES_NO),
        _custom("ContractAutoRenew__c", "contract_auto_renew__c", 3, YES_NO),
        _custom("TurnOnAutoRenew__c", "turn_on_auto_renew__c", 3, YES_NO),
        _custom("TurnOnOperationalMetrics__c", "turn_on_operational_metrics__c", 3, YES_NO),
        _custom("TurnOnSeatReconciliation__c", "turn_on_seat_reconciliation__c", 3, YES_NO),
        Field("CurrentTermPeriodType", ZType.STR, "current_term_period_type", "VARCHAR(5)",
              norm=Norm.ENUM, enum=PERIOD_TYPE),
        _custom("TurnOnCloudLicensing__c", "turn_on_cloud_licensing__c", 7, CLOUD_LICENSING),
        _custom("MarketplaceOfferType__c", "marketplace_offer_type__c", 7),
        Field("Status", ZType.STR, "status", "VARCHAR(18)", norm=Norm.ENUM,
              enum=SUBSCRIPTION_STATUS, zuora_required=True),
        Field("AccountId", ZType.ID, "account_id", ID64, nullable=False, zuora_required=True),
        Field("PreviousSubscriptionId", ZType.ID, "previous_subscription_id", ID64),
        Field("InvoiceOwnerId", ZType.ID, "invoice_owner_id", ID64, nullable=False,
              zuora_required=True),
        Field("OriginalId", ZType.ID, "original_id", ID64, nullable=False, zuora_required=True),
        Field("RampId", ZType.ID, "ramp_id", ID64),
        Field("Name", ZType.STR, "name", "VARCHAR(255)", nullable=False, zuora_required=True),
        _custom("OpportunityId__c", "opportunity_id__c", 255),
        _custom("Renewal_Subscription__c__c", "renewal_subscription__c__c", 255),
        _custom("ExternalSubscriptionId__c", "external_subscription_id__c", 255),
        _custom("ExternalSubscriptionSource__c", "external_subscription_source__c", 255),
        _custom("GitLabNamespaceId__c", "git_lab_namespace_id__c", 255),
        _custom("GitLabNamespaceName__c", "git_lab_namespace_name__c", 255),
        _custom("MarketplaceAgreementId__c", "marketplace_agreement_id__c", 255),
        _custom("MarketplaceOfferId__c", "marketplace_offer_id__c", 255),
        _custom("MarketplaceFeePercentage__c", "marketplace_fee_percentage__c", 255),
        Field("Notes", ZType.STR, "notes", "VARCHAR(500)", norm=Norm.CUSTOM),
        *_audit(),
        # Extracted for rules (latest version, terms, currency), not stored locally.
        _only("Revision", ZType.STR, required=True),
        _only("IsLatestVersion", ZType.BOOL, required=True),
        _only("TermType", ZType.STR, TERM_TYPE, required=True),
        _only("InitialTermPeriodType", ZType.STR, PERIOD_TYPE),
        _only("RenewalTermPeriodType", ZType.STR, PERIOD_TYPE),
        _only("RenewalSetting", ZType.STR, ("RENEW_WITH_SPECIFIC_TERM", "RENEW_TO_EVERGREEN")),
        _only("ContractEffectiveDate", ZType.DATE),
        _only("ServiceActivationDate", ZType.DATE),
        _only("ContractAcceptanceDate", ZType.DATE),
        _only("Currency", ZType.STR, required=True),
        _only("OriginalCreatedDate", ZType.DATETIME),
        _only("CreatorAccountId", ZType.ID),
        _only("CreatorInvoiceOwnerId", ZType.ID),
    ),
    extra_columns=LOCAL_STAMPS,
    doc="One row per subscription version (new Id per version; Name and OriginalId shared).",
)

RATE_PLAN = ObjectSpec(
    name="RatePlan", table="zuora_local_rate_plans", group="subscriptions", local_pk="zuora_id",
    parent=("SubscriptionId", "Subscription"),
    fields=(
        _id(),
        Field("SubscriptionId", ZType.ID, "subscription_id", ID64, nullable=False,
              zuora_required=True),
        Field("ProductRatePlanId", ZType.ID, "product_rate_plan_id", ID64, nullable=False,
              zuora_required=True),
        Field("Name", ZType.STR, "name", "VARCHAR(255)", nullable=False, zuora_required=True),
        *_audit(),
        Field("AmendmentType", ZType.STR, "amendment_type", "VARCHAR(64)", norm=Norm.ENUM,
              enum=AMENDMENT_TYPE,
              deviation="not in seed 003's Zuora::Local::RatePlan; stored so that "
              "orders.amendment_type can be read delegated to the latest version "
              "(orders_current, issue 16)"),
        _only("OriginalRatePlanId", ZType.ID),
        _only("SubscriptionOwnerId", ZType.ID),
        _only("InvoiceOwnerId", ZType.ID),
    ),
    extra_columns=LOCAL_STAMPS_NOT_NULL,
)

RATE_PLAN_CHARGE = ObjectSpec(
    name="RatePlanCharge", table="zuora_local_rate_plan_charges", group="subscriptions",
    local_pk="zuora_id", parent=("RatePlanId", "RatePlan"),
    fields=(
        _id(),
        Field("Version", ZType.INT, "version", "INTEGER", nullable=False, zuora_required=True),
        Field("Segment", ZType.INT, "segment", "INTEGER", nullable=False, zuora_required=True),
        Field("Quantity", ZType.DECIMAL, "quantity", "INTEGER", norm=Norm.INTEGER),
        Field("MRR", ZType.DECIMAL, "mrr", "INTEGER", norm=Norm.INTEGER),
        Field("TCV", ZType.DECIMAL, "tcv", "INTEGER", norm=Norm.INTEGER),
        Field("DMRC", ZType.DECIMAL, "dmrc", "INTEGER", norm=Norm.INTEGER),
        Field("DTCV", ZType.DECIMAL, "dtcv", "INTEGER", norm=Norm.INTEGER),
        _date("EffectiveStartDate", "effective_start_date"),
        _date("EffectiveEndDate", "effective_end_date"),
        Field("IsLastSegment", ZType.BOOL, "is_last_segment", "BOOLEAN", nullable=False,
              norm=Norm.BOOL, zuora_required=True),
        Field("ChargeType", ZType.STR, "charge_type", "VARCHAR(9)", norm=Norm.ENUM,
              enum=CHARGE_TYPE, zuora_required=True),
        Field("PriceChangeOption", ZType.STR, "price_change_option", "VARCHAR(30)",
              norm=Norm.ENUM, enum=PRICE_CHANGE_OPTION),
        Field("ChargeNumber", ZType.STR, "charge_number", "VARCHAR(50)", nullable=False,
              zuora_required=True),
        Field("RatePlanId", ZType.ID, "rate_plan_id", ID64, nullable=False, zuora_required=True),
        Field("SubscriptionId", ZType.ID, "subscription_id", ID64, nullable=False,
              zuora_required=True),
        Field("SubscriptionOwnerId", ZType.ID, "subscription_owner_id", ID64, nullable=False,
              zuora_required=True),
        Field("ProductRatePlanChargeId", ZType.ID, "product_rate_plan_charge_id", ID64,
              nullable=False, zuora_required=True),
        Field("Name", ZType.STR, "name", "VARCHAR(100)"),
        Field("Description", ZType.STR, "description", "VARCHAR(500)", norm=Norm.CUSTOM),
        *_audit(),
        _only("ChargeModel", ZType.STR, CHARGE_MODEL, required=True),
        _only("OriginalId", ZType.ID, required=True),
        _only("BillingPeriod", ZType.STR, BILLING_PERIOD),
        _only("TriggerEvent", ZType.STR, TRIGGER_EVENT),
        _only("InvoiceOwnerId", ZType.ID),
        _only("UOM", ZType.STR),
    ),
    extra_columns=LOCAL_STAMPS_NOT_NULL,
    doc="One row per (charge, segment) per subscription version; ChargeNumber is the logical "
    "charge across segments and versions.",
)

RATE_PLAN_CHARGE_TIER = ObjectSpec(
    name="RatePlanChargeTier", table="zuora_local_rate_plan_charge_tiers",
    group="subscriptions", local_pk="zuora_id", parent=("RatePlanChargeId", "RatePlanCharge"),
    fields=(
        _id(),
        Field("Tier", ZType.INT, "tier", "INTEGER", zuora_required=True),
        Field("Price", ZType.DECIMAL, "price", "DECIMAL(18,2)", norm=Norm.DECIMAL,
              zuora_required=True),
        Field("Currency", ZType.STR, "currency", "VARCHAR(3)", zuora_required=True),
        Field("PriceFormat", ZType.STR, "price_format", "VARCHAR(16)", norm=Norm.ENUM,
              enum=PRICE_FORMAT_SUB),
        Field("RatePlanChargeId", ZType.ID, "rate_plan_charge_id", ID64, nullable=False,
              zuora_required=True),
        *_audit(),
        _only("StartingUnit", ZType.DECIMAL),
        _only("EndingUnit", ZType.DECIMAL),
        _only("IsOveragePrice", ZType.BOOL),
    ),
    extra_columns=LOCAL_STAMPS_NOT_NULL,
)

# Dependency order: repair applies in this order, deletes in reverse.
OBJECTS: tuple[ObjectSpec, ...] = (
    PRODUCT, PRODUCT_RATE_PLAN, PRODUCT_RATE_PLAN_CHARGE, PRODUCT_RATE_PLAN_CHARGE_TIER,
    ACCOUNT, CONTACT,
    SUBSCRIPTION, RATE_PLAN, RATE_PLAN_CHARGE, RATE_PLAN_CHARGE_TIER,
)

# --------------------------------------------------------------------------------------------
# Local-only tables (CustomersDot). Columns from domain.md §4.2 and seed 003's orders table.
# --------------------------------------------------------------------------------------------
CUSTOMERS = LocalTable(
    name="customers", unique=(("email",),),
    columns=(
        Column("id", "BIGINT", nullable=False),
        Column("first_name", "VARCHAR(255)"),
        Column("last_name", "VARCHAR(255)"),
        Column("email", "VARCHAR(255)", nullable=False, doc="login e-mail, unique"),
        Column("provider", "VARCHAR(64)"),
        Column("uid", "VARCHAR(255)"),
        Column("zuora_account_id", ID64, doc="legacy"),
        Column("country", "VARCHAR(64)"),
        Column("state", "VARCHAR(64)"),
        Column("city", "VARCHAR(64)"),
        Column("zip_code", "VARCHAR(20)"),
        Column("vat_code", "VARCHAR(64)"),
        Column("company", "VARCHAR(255)"),
        Column("company_size", "VARCHAR(32)"),
        Column("salesforce_account_id", "VARCHAR(64)"),
        Column("billable", "BOOLEAN"),
        Column("confirmed_at", "TIMESTAMP"),
        *LOCAL_STAMPS,
    ),
    doc="CustomersDot users (login identity). One per e-mail; the Sold-To contact's e-mail "
    "must have one (L8).",
)

BILLING_ACCOUNT_MEMBERSHIPS = LocalTable(
    name="billing_account_memberships",
    columns=(
        Column("id", "BIGINT", nullable=False),
        Column("customer_id", "BIGINT", nullable=False),
        Column("billing_account_id", "BIGINT", nullable=False),
        *LOCAL_STAMPS,
    ),
    doc="Join table customers <-> billing_accounts.",
)

ORDERS = LocalTable(
    name="orders",
    columns=(
        Column("id", "BIGINT", nullable=False),
        Column("customer_id", "BIGINT", doc="trial orders: the trialling customer"),
        Column("billing_account_id", "BIGINT", owner=Owner.DERIVED,
               doc="billing_accounts.id of the latest version's AccountId"),
        Column("product_rate_plan_id", ID64, owner=Owner.DERIVED,
               doc="ProductRatePlanId of the latest version's base rate plan"),
        Column("subscription_id", ID64, owner=Owner.DERIVED, doc="latest version Id"),
        Column("subscription_name", "VARCHAR(255)", doc="the subscription number (natural key)"),
        Column("start_date", "DATE", owner=Owner.DERIVED, doc="latest TermStartDate"),
        Column("end_date", "DATE", owner=Owner.DERIVED,
               doc="latest CancelledDate when Cancelled, else TermEndDate"),
        Column("quantity", "INTEGER", owner=Owner.DERIVED,
               doc="seats: Quantity of the base plan's last recurring segment"),
        Column("gl_namespace_id", "VARCHAR(255)", doc="GitLab-owned; SaaS only"),
        Column("gl_namespace_name", "VARCHAR(255)", doc="GitLab-owned; synced from GitLab.com"),
        Column("amendment_type", "VARCHAR(64)", owner=Owner.DERIVED,
               doc="AmendmentType of the latest base rate plan"),
        Column("trial", "BOOLEAN", nullable=False, default="false"),
        Column("trial_type", "VARCHAR(64)"),
        Column("last_extra_ci_minutes_sync_at", "TIMESTAMP"),
        Column("zuora_account_id", ID64, owner=Owner.DERIVED, doc="latest version AccountId"),
        Column("increased_billing_rate_notified_at", "TIMESTAMP"),
        Column("reconciliation_accepted", "BOOLEAN", nullable=False, default="false"),
        Column("seat_overage_notified_at", "TIMESTAMP"),
        Column("auto_renew_error_notified_at", "TIMESTAMP"),
        Column("monthly_seat_digest_notified_on", "DATE"),
        Column("source", "VARCHAR(64)"),
        Column("source_gl_namespace_id", "VARCHAR(255)"),
        *LOCAL_STAMPS,
    ),
    doc="One row per paid subscription name (L4) plus trials (local only, L10). No unique "
    "constraint: duplicates are data recon must find (D11).",
)

LOCAL_TABLES: tuple[LocalTable, ...] = (CUSTOMERS, BILLING_ACCOUNT_MEMBERSHIPS, ORDERS)

# GitLab metadata on orders that dedupe must never lose (D11 keeper rule).
ORDER_METADATA = (
    "gl_namespace_id", "gl_namespace_name", "last_extra_ci_minutes_sync_at",
    "increased_billing_rate_notified_at", "reconciliation_accepted", "seat_overage_notified_at",
    "auto_renew_error_notified_at", "monthly_seat_digest_notified_on", "source_gl_namespace_id",
)
