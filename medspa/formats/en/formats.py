# Django's English formats, with the time zone's abbreviation after every date-time (the admin renders them in
# the clinic's zone: medspa/clinic_time.py). Formats not set here fall through to Django's own.
DATETIME_FORMAT = "N j, Y, P T"
SHORT_DATETIME_FORMAT = "m/d/Y P T"
