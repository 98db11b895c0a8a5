# The medspa front desk: one image for web (gunicorn), the Celery worker(s), beat and migrations.
# docker-compose.yml shows how the services are wired together.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Unprivileged runtime user. The code stays owned by root, so the running app cannot rewrite itself. The home
# directory is where gunicorn puts its control socket (~/.gunicorn/gunicorn.ctl).
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies first (pinned), so code changes do not reinstall them.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .

# Static files are built into the image (whitenoise serves them). The secrets below are throwaway values that
# exist only for this build step; they are not baked into the image's environment.
RUN DEBUG=False SECRET_KEY=build-only-not-a-secret FIELD_ENCRYPTION_KEY=build-only-not-a-key \
    python manage.py collectstatic --noinput

USER app

EXPOSE 8000

# /healthz only proves the process answers. Django validates the Host header, so send one that ALLOWED_HOSTS
# accepts (its first entry; "localhost" when unset or "*").
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request as r; h = (os.environ.get('ALLOWED_HOSTS') or 'localhost').split(',')[0].strip().lstrip('.'); h = 'localhost' if h in ('', '*') else h; r.urlopen(r.Request('http://127.0.0.1:8000/healthz', headers={'Host': h}), timeout=4)"

# medspa/gunicorn.conf.py holds the hooks (Prometheus multiprocess bookkeeping); the flags stay here.
CMD ["sh", "-c", "exec gunicorn --config medspa/gunicorn.conf.py medspa.wsgi:application --bind 0.0.0.0:8000 --workers ${WEB_CONCURRENCY:-3} --timeout 30 --access-logfile -"]
