"""After the booking: confirmation requests, reminders, no-show and rebooking texts, review requests."""
