"""Leads from clinics' web forms: the Lead, its consent record, and the public lead-capture API."""
