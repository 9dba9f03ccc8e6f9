from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from storage.operator_models import CampaignStatus
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0009_message_partial_indexes')]

    initial = False

    operations = [
        ops.AlterField(
            model_name='Campaign',
            name='status',
            field=fields.CharEnumField(default=CampaignStatus.DRAFT, description='DRAFT: draft\nSCHEDULED: scheduled\nSENDING: sending\nPAUSED: paused\nCANCELLED: cancelled\nDONE: done\nFAILED: failed', enum_type=CampaignStatus, max_length=16),
        ),
        ops.AddField(
            model_name='Campaign',
            name='failure',
            field=fields.CharField(default='', description='why enqueuing stopped (status failed)', max_length=500),
        ),
        ops.AddField(
            model_name='Campaign',
            name='preview',
            field=fields.JSONField(null=True, description='the preview as it stood when started', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
    ]
