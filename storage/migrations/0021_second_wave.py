"""Joins the second wave's migrations, each written against 0014 in parallel, into one head:
built-in regions (0015), the renewal desk (0016), conversations and complaints (0017),
privacy (0019) and accident reports (0020). They touch disjoint tables and columns, so their
order among themselves does not matter."""

from tortoise import migrations


class Migration(migrations.Migration):
    dependencies = [
        ('models', '0015_builtin_regions'),
        ('models', '0016_renewal_desk'),
        ('models', '0017_conversations'),
        ('models', '0019_privacy'),
        ('models', '0020_accident_reports'),
    ]

    initial = False

    operations: list[object] = []
