from prometheus_client import Counter

# Outcome labels only: no clinic names, phones or other patient data in metric labels.
LEAD_SUBMISSIONS = Counter(
    "medspa_lead_submissions_total",
    "Lead form submissions by outcome.",
    ["outcome"],  # created, duplicate, invalid, throttled, origin_refused, honeypot (form: a bot, nothing stored)
)
