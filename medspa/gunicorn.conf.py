"""gunicorn hooks and the access log's format (``gunicorn --config medspa/gunicorn.conf.py medspa.wsgi:application
...``); the command line keeps bind, workers, timeout and where the logs go.

With PROMETHEUS_MULTIPROC_DIR set, each gunicorn worker writes its metrics to files in that directory and
``/metrics`` adds them up; when a worker exits (a timeout, a restart) the master marks it dead, so prometheus_client
drops its live gauges. medspa/worker_metrics.py says how the files are named.
"""

# The access log never carries a query string or a referer (admin searches, ?src=, API filters: numbers, names,
# e-mails): the path (%(U)s) instead of the request line (%(r)s); otherwise gunicorn's default (combined) format.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "-" "%(a)s"'


def post_worker_init(worker):
    # The second line: medspa/logging.py's filters on gunicorn's access and error loggers, in each worker (the one
    # process that logs requests), which has loaded the project by now; the master never imports it for this.
    from medspa.logging import filter_gunicorn_logs

    filter_gunicorn_logs()


def child_exit(server, worker):
    from medspa.worker_metrics import mark_dead  # at the first exit: the master starts without the project

    mark_dead(worker.pid)
