"""The booking lifecycle (hold, awaiting deposit, confirmed, cancelled, expired) and reminders."""
