"""The renewal KPIs' rollup (``storage.renewal_rollup``) and the triggers that mark its days
stale: any write to a policy, a sent renewal message or a contact task that may change a past
expiry day's figures records that day in ``renewal_kpi_dirty`` — whoever writes it (the ORM,
the importer's batches, COPY, a cascade).

Which days a write marks (a superset of the days it changes):
- a policy inserted or deleted: its expiry day; updated: the old and the new expiry day, when
  a column the figures read changed (owner, notes and the like do not);
- a renewal message counted as sent or delivered, inserted, deleted, or changed in what the
  figures read (counted or not, channel, time, customer, kind): the expiry days of its
  customer's policies from the day before it was created on;
- a contact task (call, call-back, answer) inserted, deleted, or moved: its policy's expiry day.

PostgreSQL marks a policy statement's days once (statement triggers with transition tables,
so a 100,000-row import adds a few hundred rows); the other triggers are row triggers whose
``WHEN`` filters out everything else (a queued outbox row costs a comparison). SQLite uses
row triggers and skips a day already marked.
"""

from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

from storage.sql import is_postgres

MESSAGE_KINDS = "('renewal', 'renewal_holiday', 'lapse_rescue')"
SENT = "('sent', 'delivered')"
CONTACT_TASKS = "('renewal_call', 'renewal_callback', 'renewal_answer')"
POLICY_COLUMNS = ("customer_id", "product", "start_date", "end_date", "status", "renewed_by_id",
                  "renewal_gap_days", "cancelled_at", "branch", "agent", "original_agent",
                  "outcome", "outcome_reason")
_MESSAGE_CHANGED = (
    f"(OLD.kind IN {MESSAGE_KINDS} OR NEW.kind IN {MESSAGE_KINDS}) "
    f"AND (OLD.status IN {SENT} OR NEW.status IN {SENT}) "
    f"AND ((OLD.status IN {SENT}) IS DISTINCT FROM (NEW.status IN {SENT}) "
    "OR OLD.channel IS DISTINCT FROM NEW.channel OR OLD.created_at IS DISTINCT FROM NEW.created_at "
    "OR OLD.customer_id IS DISTINCT FROM NEW.customer_id OR OLD.kind IS DISTINCT FROM NEW.kind)")
_TASK_CHANGED = (
    f"(OLD.kind IN {CONTACT_TASKS} OR NEW.kind IN {CONTACT_TASKS}) "
    "AND (OLD.kind IS DISTINCT FROM NEW.kind OR OLD.policy_id IS DISTINCT FROM NEW.policy_id "
    "OR OLD.created_at IS DISTINCT FROM NEW.created_at)")


def _postgres() -> list[str]:
    old = ", ".join(f"o.{c}" for c in POLICY_COLUMNS)
    new = ", ".join(f"n.{c}" for c in POLICY_COLUMNS)
    return [
        """CREATE OR REPLACE FUNCTION renewal_kpi_policy_marks() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO renewal_kpi_dirty (day) SELECT DISTINCT end_date FROM new_rows;
            ELSIF TG_OP = 'DELETE' THEN
                INSERT INTO renewal_kpi_dirty (day) SELECT DISTINCT end_date FROM old_rows;
            ELSE
                INSERT INTO renewal_kpi_dirty (day)
                SELECT DISTINCT v.day FROM old_rows o JOIN new_rows n ON n.id = o.id
                CROSS JOIN LATERAL (VALUES (o.end_date), (n.end_date)) AS v(day)
                WHERE (""" + old + ") IS DISTINCT FROM (" + new + """);
            END IF;
            RETURN NULL;
        END $$""",
        "CREATE TRIGGER renewal_kpi_policy_insert AFTER INSERT ON policy "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION renewal_kpi_policy_marks()",
        "CREATE TRIGGER renewal_kpi_policy_update AFTER UPDATE ON policy "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION renewal_kpi_policy_marks()",
        "CREATE TRIGGER renewal_kpi_policy_delete AFTER DELETE ON policy "
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION renewal_kpi_policy_marks()",
        """CREATE OR REPLACE FUNCTION renewal_kpi_message_marks() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' THEN
                INSERT INTO renewal_kpi_dirty (day) SELECT p.end_date FROM policy p
                WHERE p.customer_id = OLD.customer_id
                AND p.end_date >= CAST(OLD.created_at AS date) - 1;
            END IF;
            IF TG_OP <> 'DELETE' THEN
                INSERT INTO renewal_kpi_dirty (day) SELECT p.end_date FROM policy p
                WHERE p.customer_id = NEW.customer_id
                AND p.end_date >= CAST(NEW.created_at AS date) - 1;
            END IF;
            RETURN NULL;
        END $$""",
        "CREATE TRIGGER renewal_kpi_message_insert AFTER INSERT ON message FOR EACH ROW "
        f"WHEN (NEW.kind IN {MESSAGE_KINDS} AND NEW.status IN {SENT}) "
        "EXECUTE FUNCTION renewal_kpi_message_marks()",
        "CREATE TRIGGER renewal_kpi_message_delete AFTER DELETE ON message FOR EACH ROW "
        f"WHEN (OLD.kind IN {MESSAGE_KINDS} AND OLD.status IN {SENT}) "
        "EXECUTE FUNCTION renewal_kpi_message_marks()",
        "CREATE TRIGGER renewal_kpi_message_update AFTER UPDATE ON message FOR EACH ROW "
        f"WHEN ({_MESSAGE_CHANGED}) EXECUTE FUNCTION renewal_kpi_message_marks()",
        """CREATE OR REPLACE FUNCTION renewal_kpi_task_marks() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' THEN
                INSERT INTO renewal_kpi_dirty (day)
                SELECT p.end_date FROM policy p WHERE p.id = OLD.policy_id;
            END IF;
            IF TG_OP <> 'DELETE' THEN
                INSERT INTO renewal_kpi_dirty (day)
                SELECT p.end_date FROM policy p WHERE p.id = NEW.policy_id;
            END IF;
            RETURN NULL;
        END $$""",
        "CREATE TRIGGER renewal_kpi_task_insert AFTER INSERT ON task FOR EACH ROW "
        f"WHEN (NEW.kind IN {CONTACT_TASKS} AND NEW.policy_id IS NOT NULL) "
        "EXECUTE FUNCTION renewal_kpi_task_marks()",
        "CREATE TRIGGER renewal_kpi_task_delete AFTER DELETE ON task FOR EACH ROW "
        f"WHEN (OLD.kind IN {CONTACT_TASKS} AND OLD.policy_id IS NOT NULL) "
        "EXECUTE FUNCTION renewal_kpi_task_marks()",
        "CREATE TRIGGER renewal_kpi_task_update AFTER UPDATE ON task FOR EACH ROW "
        f"WHEN ({_TASK_CHANGED}) EXECUTE FUNCTION renewal_kpi_task_marks()",
    ]


def _mark(days: str) -> str:
    """SQLite: insert each of ``days`` (a SELECT of one column ``day``) not yet marked."""
    return (f"INSERT INTO renewal_kpi_dirty (day) SELECT DISTINCT m.day FROM ({days}) m "
            "WHERE m.day IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM renewal_kpi_dirty d WHERE d.day = m.day);")


def _sqlite() -> list[str]:
    def customer_days(row: str) -> str:
        return _mark(f"SELECT p.end_date AS day FROM policy p WHERE p.customer_id = "
                     f"{row}.customer_id AND p.end_date >= date({row}.created_at, '-1 day')")

    def policy_day(row: str) -> str:
        return _mark(f"SELECT p.end_date AS day FROM policy p WHERE p.id = {row}.policy_id")

    policy_changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in POLICY_COLUMNS)
    message_changed = _MESSAGE_CHANGED.replace("IS DISTINCT FROM", "IS NOT")
    task_changed = _TASK_CHANGED.replace("IS DISTINCT FROM", "IS NOT")
    return [
        "CREATE TRIGGER renewal_kpi_policy_insert AFTER INSERT ON policy BEGIN "
        f"{_mark('SELECT NEW.end_date AS day')} END",
        "CREATE TRIGGER renewal_kpi_policy_delete AFTER DELETE ON policy BEGIN "
        f"{_mark('SELECT OLD.end_date AS day')} END",
        f"CREATE TRIGGER renewal_kpi_policy_update AFTER UPDATE ON policy WHEN {policy_changed} "
        f"BEGIN {_mark('SELECT OLD.end_date AS day UNION SELECT NEW.end_date')} END",
        "CREATE TRIGGER renewal_kpi_message_insert AFTER INSERT ON message "
        f"WHEN NEW.kind IN {MESSAGE_KINDS} AND NEW.status IN {SENT} "
        f"BEGIN {customer_days('NEW')} END",
        "CREATE TRIGGER renewal_kpi_message_delete AFTER DELETE ON message "
        f"WHEN OLD.kind IN {MESSAGE_KINDS} AND OLD.status IN {SENT} "
        f"BEGIN {customer_days('OLD')} END",
        f"CREATE TRIGGER renewal_kpi_message_update AFTER UPDATE ON message "
        f"WHEN {message_changed} BEGIN {customer_days('OLD')} {customer_days('NEW')} END",
        "CREATE TRIGGER renewal_kpi_task_insert AFTER INSERT ON task "
        f"WHEN NEW.kind IN {CONTACT_TASKS} AND NEW.policy_id IS NOT NULL "
        f"BEGIN {policy_day('NEW')} END",
        "CREATE TRIGGER renewal_kpi_task_delete AFTER DELETE ON task "
        f"WHEN OLD.kind IN {CONTACT_TASKS} AND OLD.policy_id IS NOT NULL "
        f"BEGIN {policy_day('OLD')} END",
        f"CREATE TRIGGER renewal_kpi_task_update AFTER UPDATE ON task WHEN {task_changed} "
        f"BEGIN {policy_day('OLD')} {policy_day('NEW')} END",
    ]


async def _create_triggers(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    client = schema_editor.client
    for statement in _postgres() if is_postgres(client) else _sqlite():
        await client.execute_script(statement)


class Migration(migrations.Migration):
    dependencies = [('models', '0022_consent_reference')]

    initial = False

    operations = [
        ops.CreateModel(
            name='RenewalKpiRollup',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True,
                                       db_index=True)),
                ('day', fields.DateField()),
                ('dimension', fields.CharField(max_length=16)),
                ('key', fields.CharField(default='', max_length=64)),
                ('detail', fields.CharField(default='', max_length=32)),
                ('expired', fields.IntField(default=0)),
                ('renewed', fields.IntField(default=0)),
                ('won_back', fields.IntField(default=0)),
                ('contacted_twice', fields.IntField(default=0)),
            ],
            options={'table': 'renewal_kpi_rollup', 'app': 'models',
                     'unique_together': (('day', 'dimension', 'key', 'detail'),), 'pk_attr': 'id',
                     'table_description': 'The renewal KPIs of past expiry days, summed once '
                                          '(storage.renewal_rollup). Per expiry'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RenewalKpiDirty',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True,
                                          db_index=True)),
                ('day', fields.DateField()),
            ],
            options={'table': 'renewal_kpi_dirty', 'app': 'models',
                     'indexes': [Index(fields=['day'])], 'pk_attr': 'id',
                     'table_description': 'An expiry day whose rollup rows may be stale. '
                                          'Written by database triggers on policy,'},
            bases=['Model'],
        ),
        ops.RunPython(_create_triggers),
    ]
