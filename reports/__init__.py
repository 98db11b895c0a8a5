"""Outcomes: what the front desk achieved for a clinic over a date range (issue 19 item 5), read from the other apps'
rows. The top layer: it reads leads, conversations, bookings, payments and messages, and writes nothing."""
