# Booking.language: the language of the patient's texts about the booking (lifecycle's reminders, the waitlist's
# offer, the confirmation). Bookings made before it take their conversation's language.

from django.db import migrations, models


def from_conversations(apps, schema_editor):
    Booking = apps.get_model("bookings", "Booking")
    Booking.objects.filter(conversation__language="es").update(language="es")


class Migration(migrations.Migration):

    dependencies = [
        ("bookings", "0007_booking_completed_no_show_patient_confirmed"),
        ("conversation", "0007_conversation_language"),
    ]

    operations = [
        migrations.AddField(
            model_name="booking",
            name="language",
            field=models.CharField(
                choices=[("en", "English"), ("es", "Spanish")],
                default="en",
                help_text="The language the patient's texts about it are written in: the conversation's when it was "
                "held (Spanish only while the clinic has Spanish on).",
                max_length=2,
            ),
        ),
        migrations.RunPython(from_conversations, migrations.RunPython.noop),
    ]
