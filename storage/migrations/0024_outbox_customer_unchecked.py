import re

from tortoise import fields, migrations
from tortoise.migrations import operations as ops
from tortoise.transactions import in_transaction

# The outbox (message) loses its database foreign key to customer (issue 21). A festival day
# queues a message for nearly every customer in one INSERT … SELECT per range of customers,
# and PostgreSQL checked the key row by row - a key-share lock on every customer row, so a
# write to every customer page - which was a third of the statement's time. The column, its
# (customer_id, created_at) index and the ORM relation stay.
#
# What the key guaranteed is kept by the code instead: customer rows are deleted only by
# storage.integrity.delete_customers, which deletes the customer's messages first in the same
# transaction (erasure keeps the customer row and clears the messages' parameters), and
# `engage db check` counts messages whose customer is gone. SQLite drops the key too, so that
# both backends keep the same contract.
#
# PostgreSQL drops the constraint, in one transaction. SQLite cannot drop a REFERENCES clause
# written into CREATE TABLE: the table is rebuilt (new table, copy, drop, rename, its indexes
# and triggers again - the partial indexes of 0009 and the renewal KPI triggers of 0023
# included - and its AUTOINCREMENT counter), with foreign keys
# switched off around the rebuild (allowed only outside a transaction, hence atomic = False),
# the rebuild itself one transaction ending with PRAGMA foreign_key_check. Going back adds the
# key again (ON DELETE CASCADE, as before) and fails if a message has lost its customer.

_CHECKED = re.compile(r'("customer_id" INT NOT NULL) REFERENCES "customer" \("id"\) '
                      r'ON DELETE CASCADE')
_UNCHECKED = re.compile(r'("customer_id" INT NOT NULL)(?=\s*[,)])')


class CustomerUnchecked(ops.AlterField):
    def __init__(self) -> None:
        super().__init__(
            model_name='Message',
            name='customer',
            field=fields.ForeignKeyField('models.Customer', related_name='messages', on_delete=fields.NO_ACTION, db_constraint=False),
        )

    async def database_forward(self, app_label, old_state, new_state, state_editor=None):
        await _change(state_editor, checked=False)

    async def database_backward(self, app_label, old_state, new_state, state_editor=None):
        await _change(state_editor, checked=True)


async def _change(state_editor, *, checked: bool) -> None:
    if state_editor is None:
        return
    client = state_editor.client
    if client.capabilities.dialect != "sqlite":
        async with in_transaction(client.connection_name) as conn:
            if checked:
                name = state_editor._generate_fk_name("message", "customer_id", "customer", "id")
                await conn.execute_script(
                    f'ALTER TABLE "message" ADD CONSTRAINT "{name}" FOREIGN KEY ("customer_id") '
                    'REFERENCES "customer" ("id") ON DELETE CASCADE')
                return
            rows = await conn.execute_query_dict(
                "SELECT conname FROM pg_constraint WHERE conrelid = 'message'::regclass "
                "AND confrelid = 'customer'::regclass AND contype = 'f'")
            for row in rows:
                await conn.execute_script(
                    f'ALTER TABLE "message" DROP CONSTRAINT "{row["conname"]}"')
        return
    await client.execute_script("PRAGMA foreign_keys = OFF")
    try:
        async with in_transaction(client.connection_name) as conn:
            await _rebuild(conn, checked=checked)
    finally:
        await client.execute_script("PRAGMA foreign_keys = ON")


async def _rebuild(conn, *, checked: bool) -> None:
    _, rows = await conn.execute_query(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'message'")
    if checked:
        create, count = _UNCHECKED.subn(
            r'\1 REFERENCES "customer" ("id") ON DELETE CASCADE', rows[0][0])
    else:
        create, count = _CHECKED.subn(r"\1", rows[0][0])
    if count != 1:
        raise RuntimeError("message.customer_id is not declared as this migration expects")
    _, rows = await conn.execute_query(
        "SELECT sql FROM sqlite_master WHERE type IN ('index', 'trigger') "
        "AND tbl_name = 'message' AND sql IS NOT NULL ORDER BY type")
    indexes = [row[0] for row in rows]  # and triggers (0023's renewal KPI marks)
    _, rows = await conn.execute_query("SELECT seq FROM sqlite_sequence WHERE name = 'message'")
    counter = rows[0][0] if rows else None
    await conn.execute_query(create.replace('CREATE TABLE "message"', 'CREATE TABLE "new__message"', 1))
    await conn.execute_query('INSERT INTO "new__message" SELECT * FROM "message"')
    await conn.execute_query('DROP TABLE "message"')
    await conn.execute_query('ALTER TABLE "new__message" RENAME TO "message"')
    for sql in indexes:
        await conn.execute_query(sql)
    if counter is not None:  # ids are never reused, even those of rows deleted since
        await conn.execute_query("UPDATE sqlite_sequence SET seq = ? WHERE name = 'message'",
                                 [counter])
    _, broken = await conn.execute_query('PRAGMA foreign_key_check("message")')
    if broken:
        raise RuntimeError(f"messages without their customer: {list(broken[0])}")


class Migration(migrations.Migration):
    dependencies = [('models', '0023_renewal_kpi_rollup')]

    initial = False
    atomic = False

    operations = [CustomerUnchecked()]
