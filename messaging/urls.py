from medspa.routes import slash_optional

from . import webhooks

# Paths are part of the external contract (providers' dashboards): with or without the slash, never redirected.
urlpatterns = [
    *slash_optional("webhooks/telnyx/messages", webhooks.TelnyxMessagesWebhook.as_view(), "telnyx-messages"),
    *slash_optional("webhooks/telnyx/voice", webhooks.TelnyxVoiceWebhook.as_view(), "telnyx-voice"),
    *slash_optional("webhooks/twilio/messages", webhooks.TwilioMessagesWebhook.as_view(), "twilio-messages"),
    *slash_optional("webhooks/twilio/status", webhooks.TwilioStatusWebhook.as_view(), "twilio-status"),
    *slash_optional("webhooks/twilio/voice", webhooks.TwilioVoiceWebhook.as_view(), "twilio-voice"),
]
