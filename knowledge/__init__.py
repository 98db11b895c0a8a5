"""Clinic knowledge documents and chunks, indexing and search, the ingestion API."""
