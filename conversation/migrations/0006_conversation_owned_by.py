# The staff member answering the patient: one owner at a time (issue 19).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('conversation', '0005_cancel_needs_a_yes'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='conversation',
            name='owned_by',
            field=models.ForeignKey(blank=True, help_text='The staff member answering the patient (one at a time); empty: the assistant, or any of the staff.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
    ]
