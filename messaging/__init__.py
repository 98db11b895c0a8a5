"""Clinic phone numbers, messages, opt-outs, SMS provider backends, webhooks, compliance (keywords, quiet hours),
sending with retries, 10DLC."""
