"""The repair executor: applies a repair plan (``reconcile.repair`` writes it) to the LOCAL
database — set-based, batched, audited, revertible, behind guards and a lock. Zuora is never
written. Public API: :mod:`jobs.repair.apply`; plan contract: :mod:`jobs.repair.plan_format`.
"""
