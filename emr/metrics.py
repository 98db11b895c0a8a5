from prometheus_client import Counter

# Labels are the EMR, a FHIR resource type and a fixed reason: never ids, names, times or any other value read.
RESOURCES_SKIPPED = Counter(
    "medspa_emr_resources_skipped_total",
    "Resources in an EMR answer left out because they could not be read, by EMR, resource type and reason.",
    ["emr", "resource", "reason"],  # reason: invalid, no_offset, bad_times, no_practitioner
)
