# WaitlistEntry.language: the language of the offer's text when a time frees up. Entries made before it take their
# conversation's language.

from django.db import migrations, models


def from_conversations(apps, schema_editor):
    WaitlistEntry = apps.get_model("waitlist", "WaitlistEntry")
    WaitlistEntry.objects.filter(conversation__language="es").update(language="es")


class Migration(migrations.Migration):

    dependencies = [
        ("waitlist", "0002_role_permissions"),
        ("conversation", "0007_conversation_language"),
    ]

    operations = [
        migrations.AddField(
            model_name="waitlistentry",
            name="language",
            field=models.CharField(
                choices=[("en", "English"), ("es", "Spanish")],
                default="en",
                help_text="The language of the offer's text: the conversation's when the patient joined (the time "
                "held for them is a booking in this language).",
                max_length=2,
            ),
        ),
        migrations.RunPython(from_conversations, migrations.RunPython.noop),
    ]
