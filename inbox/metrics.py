from prometheus_client import Counter

# Labels are providers, event types we know and outcomes: never numbers, names or texts.
WEBHOOKS = Counter("medspa_webhooks_total", "Webhook requests by provider and outcome.", ["provider", "outcome"])
EVENTS = Counter(
    "medspa_webhook_events_total",
    "Inbox events by provider and outcome (processed, ignored, flagged, failed, gave_up, reprocessed, redelivered).",
    ["provider", "outcome"],
)
SWEEP_REQUEUED = Counter(
    "medspa_sweep_requeued_total", "Rows a periodic sweep handed back to the queue, by sweep.", ["sweep"]
)
