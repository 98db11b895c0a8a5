"""The EMR client interface, the built-in calendar, Nextech, Boulevard and manual adapters, availability cache."""
