import re

from tortoise import fields, migrations
from tortoise.migrations import operations as ops
from tortoise.transactions import in_transaction

# A phone number stops being unique: several customers may share one. The unique constraint
# on customer.phone becomes a plain index.
#
# PostgreSQL drops the constraint and creates the index, in one transaction.
#
# SQLite cannot drop a UNIQUE written into CREATE TABLE: the table is rebuilt (new table,
# copy, drop, rename, its indexes again). With foreign keys on, dropping the old table would
# run the ON DELETE actions of every table that references customer (CASCADE would empty
# consent and message), so foreign keys are switched off around the rebuild - which SQLite
# only allows outside a transaction, hence this migration is not atomic as a whole - and the
# rebuild itself is one transaction that ends with PRAGMA foreign_key_check.

_UNIQUE_PHONE = re.compile(r'("phone" VARCHAR\(20\) NOT NULL) UNIQUE')


class PhoneNotUnique(ops.AlterField):
    def __init__(self) -> None:
        super().__init__(
            model_name='Customer',
            name='phone',
            field=fields.CharField(db_index=True, description='E.164, a contact point several customers may share', max_length=20),
        )

    async def database_forward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor is None:
            return
        client = state_editor.client
        if client.capabilities.dialect != "sqlite":
            async with in_transaction(client.connection_name) as conn:
                state_editor.client = conn
                try:
                    await super().database_forward(app_label, old_state, new_state, state_editor)
                finally:
                    state_editor.client = client
            return
        model = new_state.apps.get_model(f"{app_label}.Customer")
        index = state_editor._generate_index_name("idx", model, ["phone"])
        await client.execute_script("PRAGMA foreign_keys = OFF")
        try:
            async with in_transaction(client.connection_name) as conn:
                await _rebuild(conn, index)
        finally:
            await client.execute_script("PRAGMA foreign_keys = ON")

    async def database_backward(self, app_label, old_state, new_state, state_editor=None):
        raise NotImplementedError("customers may share a phone now: there is no way back")


async def _rebuild(conn, index: str) -> None:
    _, rows = await conn.execute_query(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'customer'")
    create, count = _UNIQUE_PHONE.subn(r"\1", rows[0][0])
    if count != 1:
        raise RuntimeError("customer.phone is not declared as this migration expects")
    _, rows = await conn.execute_query(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'customer' "
        "AND sql IS NOT NULL")
    indexes = [row[0] for row in rows]
    await conn.execute_query(create.replace('CREATE TABLE "customer"', 'CREATE TABLE "new__customer"', 1))
    await conn.execute_query('INSERT INTO "new__customer" SELECT * FROM "customer"')
    await conn.execute_query('DROP TABLE "customer"')
    await conn.execute_query('ALTER TABLE "new__customer" RENAME TO "customer"')
    for sql in indexes:
        await conn.execute_query(sql)
    await conn.execute_query(f'CREATE INDEX "{index}" ON "customer" ("phone")')
    _, broken = await conn.execute_query("PRAGMA foreign_key_check")
    if broken:
        raise RuntimeError(f"foreign keys broken by the customer rebuild: {list(broken[0])}")


class Migration(migrations.Migration):
    dependencies = [('models', '0012_a_customer_identity')]

    initial = False
    atomic = False

    operations = [PhoneNotUnique()]
