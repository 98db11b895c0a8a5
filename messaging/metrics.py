from prometheus_client import Counter, Histogram

# Labels are outcomes and providers only: never numbers, clinics' patients or texts.
SENDS = Counter("medspa_sms_sends_total", "Outbound send attempts by outcome.", ["outcome"])
SEND_SECONDS = Histogram("medspa_sms_send_seconds", "Time of one provider send request.")
INBOUND = Counter("medspa_sms_inbound_total", "Inbound texts by compliance outcome.", ["outcome"])
MISSED_CALLS = Counter("medspa_missed_calls_total", "Missed calls by outcome.", ["outcome"])
STUCK = Counter("medspa_sms_stuck_total", "Outbound texts the reconcile sweep found stuck, by status.", ["status"])
RECONCILED = Counter(
    "medspa_sms_reconciled_total", "Stuck outbound texts by what the reconcile sweep did.", ["provider", "outcome"]
)
