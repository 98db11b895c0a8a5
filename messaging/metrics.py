from prometheus_client import Counter, Histogram

# Labels are outcomes and providers only: never numbers, clinics' patients or texts.
WEBHOOKS = Counter("medspa_webhooks_total", "Webhook requests by provider and outcome.", ["provider", "outcome"])
SENDS = Counter("medspa_sms_sends_total", "Outbound send attempts by outcome.", ["outcome"])
SEND_SECONDS = Histogram("medspa_sms_send_seconds", "Time of one provider send request.")
INBOUND = Counter("medspa_sms_inbound_total", "Inbound texts by compliance outcome.", ["outcome"])
MISSED_CALLS = Counter("medspa_missed_calls_total", "Missed calls by outcome.", ["outcome"])
