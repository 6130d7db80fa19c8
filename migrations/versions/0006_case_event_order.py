"""case_event ids commit in order on PostgreSQL: every insert into case_event takes one advisory lock

Revision ID: 0006_case_event_order
Revises: 0005_effective_dispatch

Readers take the newest case event id as the version of what they show (the live stream resumes after it; a
case or hot-spot tile's ETag and cache key carry it). A PostgreSQL sequence hands out ids when rows are
inserted, not when they commit: with two writers, id 11 can commit before id 10, and a version read between
the two commits is already 11, so it never learns of 10 (a stale case tile served under a fresh-looking ETag
until the clock part of its version moves on).

A BEFORE INSERT statement-level trigger on case_event takes the transaction-scoped advisory lock
``pg_advisory_xact_lock(7301011)`` (``casework.models.EVENT_ORDER_LOCK``; written out here because a migration
must not change when the code does), before the statement draws any id. So a transaction that writes events
holds the lock until it commits or rolls back, and the next writer draws its ids only after that: ids become
visible in increasing order, whatever path writes them (the case service and the legacy import take the same
lock earlier, at their start, so they never wait for it while holding row locks).

What it costs: one case_event writer at a time. Transactions that append events queue on the lock from their
first event (from their start for the service and the import) to their commit; they are short (one action,
a few milliseconds), but a legacy import of a whole file holds every other case action until it commits.
SQLite has one writer anyway and gets nothing.
"""
from alembic import op

revision = '0006_case_event_order'
down_revision = '0005_effective_dispatch'
branch_labels = None
depends_on = None

EVENT_ORDER_LOCK = 7301011


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(f"""
        CREATE FUNCTION case_event_order() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock({EVENT_ORDER_LOCK});
            RETURN NULL;
        END
        $$""")
    op.execute("CREATE TRIGGER case_event_order BEFORE INSERT ON case_event "
               "FOR EACH STATEMENT EXECUTE FUNCTION case_event_order()")


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("DROP TRIGGER case_event_order ON case_event")
    op.execute("DROP FUNCTION case_event_order()")
