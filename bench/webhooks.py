"""Benchmark: webhook acknowledgement and missed-call -> intro latency on real services.

Starts, on this machine only (127.0.0.1): gunicorn serving the project, a Celery worker, and the fake Telnyx API
from tests/fakes; uses PostgreSQL and Redis from DATABASE_URL / REDIS_URL (default: the local services, database
``medspa_bench``). Measures, in the same server and run:

1. acknowledgement latency and throughput of signed Telnyx ``message.received`` webhooks at 50 concurrent
   clients, against a bare Django view (``/healthz``) under the same load: the ratio is the figure of merit;
2. missed call -> intro: the time from posting a signed ``call.hangup`` (no answer) to the intro's send request
   reaching the fake Telnyx API through the real worker.

Usage: ``.venv/bin/python bench/webhooks.py [--requests 2000] [--concurrency 50] [--calls 30]``.
Targets (issue 3): webhook p99 under 100 ms at 50 concurrent; intro within 2 s p95.
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Candidate callers: one number per zone; the bench picks one whose local time is inside the sending window.
CALLER_AREAS = [
    ("212", "America/New_York"),
    ("312", "America/Chicago"),
    ("303", "America/Denver"),
    ("415", "America/Los_Angeles"),
    ("808", "Pacific/Honolulu"),
    ("671", "Pacific/Guam"),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def ensure_database(url):
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def wait_http(port, path="/healthz", seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not start")


def load(port, make_request, total, concurrency):
    """``total`` requests over ``concurrency`` keep-alive connections; returns (latencies in s, wall seconds)."""
    latencies, lock = [], threading.Lock()
    per_client = total // concurrency

    def client(_):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        for _ in range(per_client):
            method, path, body, headers = make_request()
            started = time.perf_counter()
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            if response.status != 200:
                raise RuntimeError(f"{path}: HTTP {response.status}")
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(client, range(concurrency)))
    return latencies, time.perf_counter() - started


def summary(name, latencies, wall):
    return {
        "name": name,
        "n": len(latencies),
        "rps": len(latencies) / wall,
        "p50": percentile(latencies, 50) * 1000,
        "p95": percentile(latencies, 95) * 1000,
        "p99": percentile(latencies, 99) * 1000,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--web-workers", type=int, default=2)
    args = parser.parse_args()

    database_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/medspa_bench")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/5")
    ensure_database(database_url)

    from tests.fakes.telnyx_messaging import FakeTelnyx, serve
    from tests.messaging_helpers import TELNYX_PUBLIC, telnyx_envelope, telnyx_headers, telnyx_inbound

    fake = FakeTelnyx()
    arrivals = {}
    original = fake.handle

    def handle(handler):  # note when each send request reaches "Telnyx"
        original(handler)
        arrivals[fake.requests[-1]["json"]["to"]] = time.perf_counter()

    fake.handle = handle
    telnyx = serve(fake)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DEBUG": "False",
        "SECRET_KEY": "bench-" + uuid.uuid4().hex * 2,
        "FIELD_ENCRYPTION_KEY": "ZGV2LW9ubHktZmllbGQta2V5LWNoYW5nZS1tZS0xMTE=",
        "ALLOWED_HOSTS": "127.0.0.1",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "SECURE_SSL_REDIRECT": "False",
        "BEHIND_TLS_PROXY": "False",
        "SMS_BACKEND": "",
        "TELNYX_API_KEY": "KEY_bench",
        "TELNYX_PUBLIC_KEY": TELNYX_PUBLIC,
        "TELNYX_BASE_URL": f"http://127.0.0.1:{telnyx.server_port}/v2",
        "LOG_LEVEL": "WARNING",
    }
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run([python, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    setup = (
        "from medspa.models import Clinic; from messaging.models import PhoneNumber, Message; from inbox.models import WebhookEvent;"
        "from conversation.models import Conversation;"
        "c, _ = Clinic.objects.get_or_create(slug='bench', defaults={'name': 'Bench Spa'});"
        "PhoneNumber.objects.get_or_create(number='+15555550100', defaults={'clinic': c});"
        "Message.objects.filter(clinic=c).delete(); Conversation.objects.filter(clinic=c).delete();"
        "WebhookEvent.objects.all().delete()"
    )
    subprocess.run([python, "manage.py", "shell", "-c", setup], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [python, "-m", "celery", "-A", "medspa", "purge", "-f"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    web = subprocess.Popen(
        [
            python,
            "-m",
            "gunicorn",
            "medspa.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(args.web_workers),
            "--threads",
            "8",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    worker = None
    try:
        wait_http(port)

        def bare():
            return "GET", "/healthz", None, {}

        def webhook():
            raw = json.dumps(
                telnyx_inbound("What are your hours?", from_=f"+1617555{uuid.uuid4().int % 10000:04d}")
            ).encode()
            return (
                "POST",
                "/webhooks/telnyx/messages",
                raw,
                {
                    "Content-Type": "application/json",
                    **{k[5:].replace("_", "-").lower(): v for k, v in telnyx_headers(raw).items()},
                },
            )

        load(port, bare, 200, 10)  # warm up both
        load(port, webhook, 200, 10)
        results = []
        for name, maker in (("bare view (/healthz)", bare), ("Telnyx message.received", webhook)):
            results.append(summary(name, *load(port, maker, args.requests, args.concurrency)))

        # The worker starts only now: in production it runs on its own cores (docs/DEPLOYMENT.md), so it must not
        # take this 2-CPU machine's time from the web processes while their acknowledgement time is measured.
        # It then drains what the webhooks enqueued (inbound texts -> conversations): its throughput.
        worker = subprocess.Popen(
            [
                python,
                "-m",
                "celery",
                "-A",
                "medspa",
                "worker",
                "-Q",
                # Every queue (medspa/celery.py QUEUES): webhook events go to inbound, turns to ai, missed calls and
                # intros to priority. A worker reading only sms,default never processed them.
                "default,priority,inbound,sms,ai,emr,periodic",
                "--concurrency",
                "2",
                "-l",
                "warning",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
        )
        drain_started = time.perf_counter()  # includes the worker's own start-up (about a second)
        import psycopg

        with psycopg.connect(database_url) as conn:
            while conn.execute("SELECT count(*) FROM inbox_webhookevent WHERE status = 'pending'").fetchone()[0]:
                time.sleep(0.1)
            processed = conn.execute("SELECT count(*) FROM inbox_webhookevent").fetchone()[0]
        drain = time.perf_counter() - drain_started

        # Missed call -> intro at the fake Telnyx, one call at a time, through the idle real worker.
        now = datetime.now(UTC)
        area = next(a for a, zone in CALLER_AREAS if 8 <= now.astimezone(ZoneInfo(zone)).hour < 20)
        intro_seconds = []
        for i in range(args.calls):
            caller = f"+1{area}555{1000 + i:04d}"
            payload = {
                "call_session_id": str(uuid.uuid4()),
                "direction": "incoming",
                "from": caller,
                "to": "+15555550100",
                "hangup_cause": "no_answer",
                "hangup_source": "callee",
            }
            raw = json.dumps(telnyx_envelope("call.hangup", payload)).encode()
            headers = {
                "Content-Type": "application/json",
                **{k[5:].replace("_", "-").lower(): v for k, v in telnyx_headers(raw).items()},
            }
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            started = time.perf_counter()
            conn.request("POST", "/webhooks/telnyx/voice", body=raw, headers=headers)
            assert conn.getresponse().status == 200
            deadline = time.monotonic() + 10
            while caller not in arrivals and time.monotonic() < deadline:
                time.sleep(0.002)
            if caller not in arrivals:
                raise RuntimeError("intro did not reach the fake Telnyx within 10 s")
            intro_seconds.append(arrivals[caller] - started)
    finally:
        for process in (web, worker):
            if process is not None:
                process.terminate()
                process.wait(20)
        telnyx.shutdown()

    bare_r, hook_r = results
    print(
        f"\n{args.requests} requests per endpoint, {args.concurrency} concurrent clients, "
        f"gunicorn {args.web_workers} workers x 8 threads, {os.cpu_count()} CPUs\n"
    )
    print("| endpoint | req/s | p50 ms | p95 ms | p99 ms |\n| --- | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['name']} | {r['rps']:.0f} | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} |")
    print(
        f"\nwebhook / bare: throughput {hook_r['rps'] / bare_r['rps']:.2f}x, p99 {hook_r['p99'] / bare_r['p99']:.2f}x"
    )
    print(f"\nworker: {processed} webhook events processed in {drain:.1f} s ({processed / drain:.0f} events/s)")
    print(
        f"\nmissed call -> intro request at Telnyx ({args.calls} calls, area code {area}): "
        f"p50 {statistics.median(intro_seconds) * 1000:.0f} ms, p95 {percentile(intro_seconds, 95) * 1000:.0f} ms, "
        f"max {max(intro_seconds) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
