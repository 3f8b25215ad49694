"""The callout receiver and its workers (issue 15): Zuora's callouts stored durably in the inbox
(``core.inbox``) and turned into targeted syncs (``sync``). Beside ``jobs``: the two never
import each other (only the CLI's ``jobs.cli.callouts`` command module starts this service)."""
