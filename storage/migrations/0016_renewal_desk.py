from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

# The renewal desk: policies get their agent (and the original agent kept through renewals),
# branch, responsible owner and renewal outcome; operators a branch and a manager flag; tasks
# a dedup key (a button tapped twice makes one task) and a result.


def _char(length: int, description: str | None = None) -> fields.CharField:
    return fields.CharField(default='', db_default='', max_length=length, description=description)


class Migration(migrations.Migration):
    dependencies = [('models', '0014_task_due_at')]

    initial = False

    operations = [
        ops.AddField(model_name='Policy', name='agent',
                     field=_char(64, 'the agent on this policy, as imported')),
        ops.AddField(model_name='Policy', name='original_agent',
                     field=_char(64, 'the agent the business is attributed to for life, kept '
                                     'through renewals')),
        ops.AddField(model_name='Policy', name='branch', field=_char(32)),
        ops.AddField(model_name='Policy', name='owner',
                     field=_char(64, 'the operator who claimed its renewal (else the agent, '
                                     'else the branch pool)')),
        ops.AddField(model_name='Policy', name='claimed_at',
                     field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
        ops.AddField(model_name='Policy', name='outcome', field=_char(24)),
        ops.AddField(model_name='Policy', name='outcome_reason', field=_char(24)),
        ops.AddField(model_name='Policy', name='outcome_note', field=_char(200)),
        ops.AddField(model_name='Policy', name='outcome_by', field=_char(64)),
        ops.AddField(model_name='Policy', name='outcome_at',
                     field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
        ops.AddField(model_name='Policy', name='renewal_gap_days',
                     field=fields.SmallIntField(null=True, description='days from its expiry to '
                                                'the start of the policy that renewed it')),
        ops.AddIndex(model_name='Policy', index=Index(fields=['branch', 'end_date'])),
        ops.AddField(model_name='Operator', name='branch',
                     field=_char(32, 'the branch whose renewals they work')),
        ops.AddField(model_name='Operator', name='manager',
                     field=fields.BooleanField(default=False, db_default=False,
                                               description='manages the branch: confirms and '
                                                           'reassigns')),
        ops.AddField(model_name='Task', name='dedup_key',
                     field=fields.CharField(null=True, unique=True, max_length=200,
                                            description='one task per key: a button tapped '
                                                        'twice, an update replayed, a day '
                                                        'planned again')),
        ops.AddIndex(model_name='Task', index=Index(fields=['policy_id', 'created_at'])),
        ops.AddField(model_name='Task', name='result',
                     field=_char(32, "a logged call's result, an escalation's level")),
    ]
