"""Scheduling systems: one client interface (emr.base), the built-in calendar, Nextech (FHIR STU3), Boulevard
(GraphQL), manual EMRs, availability cache."""
