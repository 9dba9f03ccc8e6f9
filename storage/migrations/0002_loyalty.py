from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from storage.loyalty_models import EntryKind, TierChangeReason, VoucherStatus
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CheckIn',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('customer', fields.ForeignKeyField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name='checkins', on_delete=OnDelete.RESTRICT)),
                ('day', fields.DateField()),
                ('streak', fields.IntField()),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'loyalty_checkin', 'app': 'models', 'unique_together': (('customer', 'day'),), 'pk_attr': 'id', 'table_description': 'One row per customer per customer-local day: the unique pair makes check-in once a day.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='LoyaltyAccount',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('customer', fields.OneToOneField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name='loyalty_account', on_delete=OnDelete.RESTRICT)),
                ('balance', fields.BigIntField(default=0, description='always the sum of the entries')),
                ('tier', fields.CharField(default='standard', max_length=32)),
                ('tier_since', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'loyalty_account', 'app': 'models', 'pk_attr': 'id', 'table_description': 'One per customer: the running points balance and the current VIP tier.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='LedgerEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('account', fields.ForeignKeyField('models.LoyaltyAccount', source_field='account_id', db_constraint=True, to_field='id', related_name='entries', on_delete=OnDelete.RESTRICT)),
                ('kind', fields.CharEnumField(description='EARN_PREMIUM: earn_premium\nPREMIUM_REVERSAL: premium_reversal\nCHECKIN: checkin\nCHECKIN_STREAK: checkin_streak\nREFERRAL: referral\nBIRTHDAY: birthday\nADJUSTMENT: adjustment\nREDEMPTION: redemption\nEXPIRY: expiry\nREVERSAL: reversal', enum_type=EntryKind, max_length=24)),
                ('amount', fields.BigIntField(description='signed points, credit positive')),
                ('balance_after', fields.BigIntField()),
                ('idempotency_key', fields.CharField(unique=True, max_length=200)),
                ('fingerprint', fields.CharField(description='sha256 of the request content', max_length=64)),
                ('reverses', fields.ForeignKeyField('models.LedgerEntry', source_field='reverses_id', null=True, db_constraint=True, to_field='id', related_name='reversals', on_delete=OnDelete.RESTRICT)),
                ('shortfall', fields.BigIntField(default=0, description='points a reversal could not take back because they were spent')),
                ('payment', fields.ForeignKeyField('models.Payment', source_field='payment_id', null=True, db_constraint=True, to_field='id', related_name='loyalty_entries', on_delete=OnDelete.RESTRICT)),
                ('policy', fields.ForeignKeyField('models.Policy', source_field='policy_id', null=True, db_constraint=True, to_field='id', related_name='loyalty_entries', on_delete=OnDelete.RESTRICT)),
                ('reason', fields.TextField(default='', unique=False)),
                ('operator', fields.CharField(default='', max_length=100)),
                ('occurred_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'loyalty_entry', 'app': 'models', 'indexes': [Index(fields=['account_id', 'occurred_at']), Index(fields=['occurred_at', 'kind'])], 'pk_attr': 'id', 'table_description': 'An immutable points posting. A mistake is corrected by a reversal entry, never an edit.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Partner',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(unique=True, max_length=100)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('reward_kinds', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('active', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'loyalty_partner', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A service partner (car wash, driving service, garage) that verifies and uses vouchers.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PointLot',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('account', fields.ForeignKeyField('models.LoyaltyAccount', source_field='account_id', db_constraint=True, to_field='id', related_name='lots', on_delete=OnDelete.RESTRICT)),
                ('entry', fields.ForeignKeyField('models.LedgerEntry', source_field='entry_id', db_constraint=True, to_field='id', related_name='lots', on_delete=OnDelete.RESTRICT)),
                ('original', fields.BigIntField()),
                ('remaining', fields.BigIntField()),
                ('earned_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_on', fields.DateField(description='the last day the points may be used')),
            ],
            options={'table': 'loyalty_lot', 'app': 'models', 'indexes': [Index(fields=['account_id', 'expires_on']), Index(fields=['expires_on', 'remaining'])], 'pk_attr': 'id', 'table_description': 'The points one credit brought, with their expiry date. Debits consume lots first-'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='LotUse',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('entry', fields.ForeignKeyField('models.LedgerEntry', source_field='entry_id', db_constraint=True, to_field='id', related_name='lot_uses', on_delete=OnDelete.RESTRICT)),
                ('lot', fields.ForeignKeyField('models.PointLot', source_field='lot_id', db_constraint=True, to_field='id', related_name='uses', on_delete=OnDelete.RESTRICT)),
                ('amount', fields.BigIntField(description='positive points taken from the lot')),
            ],
            options={'table': 'loyalty_lot_use', 'app': 'models', 'pk_attr': 'id', 'table_description': 'How many points one debit took from one lot, so a reversal can give them back.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Reward',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code', fields.CharField(unique=True, max_length=40)),
                ('kind', fields.CharField(db_index=True, max_length=24)),
                ('name_zh', fields.CharField(max_length=100)),
                ('name_en', fields.CharField(max_length=100)),
                ('points_cost', fields.IntField()),
                ('min_tier', fields.CharField(default='standard', max_length=32)),
                ('stock', fields.IntField(null=True, description='None means unlimited')),
                ('monthly_limit', fields.IntField(null=True)),
                ('yearly_limit', fields.IntField(null=True)),
                ('active_from', fields.DateField(null=True)),
                ('active_until', fields.DateField(null=True)),
                ('retired_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'loyalty_reward', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A catalogue entry customers redeem points (or a tier entitlement) for.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TierChange',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('account', fields.ForeignKeyField('models.LoyaltyAccount', source_field='account_id', db_constraint=True, to_field='id', related_name='tier_changes', on_delete=OnDelete.RESTRICT)),
                ('from_tier', fields.CharField(max_length=32)),
                ('to_tier', fields.CharField(max_length=32)),
                ('reason', fields.CharEnumField(description='UPGRADE: upgrade\nREVIEW: review', enum_type=TierChangeReason, max_length=16)),
                ('trailing_premium_cents', fields.BigIntField()),
                ('effective_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('key', fields.CharField(unique=True, max_length=120)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'loyalty_tier_change', 'app': 'models', 'pk_attr': 'id', 'table_description': "Tier history: every change of an account's tier, with the premium that justified it."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Voucher',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code', fields.CharField(unique=True, max_length=16)),
                ('customer', fields.ForeignKeyField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name='vouchers', on_delete=OnDelete.RESTRICT)),
                ('reward', fields.ForeignKeyField('models.Reward', source_field='reward_id', db_constraint=True, to_field='id', related_name='vouchers', on_delete=OnDelete.RESTRICT)),
                ('reward_kind', fields.CharField(max_length=24)),
                ('points_cost', fields.IntField()),
                ('entitlement', fields.BooleanField(default=False, description='a free tier benefit')),
                ('discount_percent', fields.SmallIntField(default=0)),
                ('status', fields.CharEnumField(default=VoucherStatus.ISSUED, description='ISSUED: issued\nUSED: used\nCANCELLED: cancelled\nEXPIRED: expired', enum_type=VoucherStatus, max_length=16)),
                ('request_key', fields.CharField(unique=True, max_length=200)),
                ('issued_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('used_by', fields.ForeignKeyField('models.Partner', source_field='used_by_id', null=True, db_constraint=True, to_field='id', related_name='vouchers_used', on_delete=OnDelete.RESTRICT)),
                ('cancelled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('debit_entry', fields.ForeignKeyField('models.LedgerEntry', source_field='debit_entry_id', null=True, db_constraint=True, to_field='id', related_name='vouchers', on_delete=OnDelete.RESTRICT)),
                ('refund_entry', fields.ForeignKeyField('models.LedgerEntry', source_field='refund_entry_id', null=True, db_constraint=True, to_field='id', related_name='refunded_vouchers', on_delete=OnDelete.RESTRICT)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'loyalty_voucher', 'app': 'models', 'indexes': [Index(fields=['customer_id', 'reward_kind', 'issued_at']), Index(fields=['status', 'expires_at'])], 'pk_attr': 'id', 'table_description': 'What a redemption issues: an unguessable code a partner marks used exactly once.'},
            bases=['Model'],
        ),
    ]
