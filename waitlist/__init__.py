"""The waitlist: patients waiting for a time to open, and freed times offered to them one at a time."""
