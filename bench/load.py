"""Benchmark: sustained signed inbound load, measured end to end (patient's text -> the reply's send request).

Starts, on this machine only (127.0.0.1), the processes of the end-to-end tests (``tests/e2e/stack.py``): gunicorn
serving the project, the Celery workers per queue (``worker``: default, ai, emr, periodic; ``worker-sms``: sms;
``worker-inbound``: inbound; ``worker-priority``: priority), beat, and the out-of-process fakes; the fake Telnyx API is the e2e one
(``tests/fakes/telnyx_messaging.py`` served as ``tests/e2e/fakeproc.py`` does) with each send request stamped with
its arrival time. PostgreSQL database ``medspa_load`` (created, migrated and emptied at start) and Redis db 7
(flushed at start). One clinic (the demo clinic file: 10 services, 27 knowledge documents, 2 providers on the
built-in calendar) in a time zone where it is mid-day now, on one Telnyx number; the rules engine answers (no
OpenAI key); ``CONVERSATION_DEBOUNCE_SECONDS`` is the production default (1 s) unless ``--debounce`` says otherwise.

Scenarios (``--scenario``):

- ``sustained``: signed ``message.received`` webhooks, each the first text of a new patient, at a fixed target
  rate for ``--seconds`` (open loop: each post has its time; ``--concurrency`` client threads send them), for each
  rate of ``--rate`` (comma-separated). Then waits until every patient is answered or ``--timeout`` passes. The
  webhooks are built and signed before the window (Telnyx accepts a signature's timestamp for 5 minutes), so the
  load generator's CPU in the window is the posting itself.
- ``low``: the same at ``--low-rate`` (10/s): reply p95 (target under 2 s).
- ``intro``: a burst at ``--burst-rate`` during which ``--calls`` other callers' signed ``call.hangup`` (incoming,
  no answer) are posted at a steady pace: missed call -> intro send request (target p95 under 1 s).

Patients and callers use area code 208 (Idaho: two zones, so quiet hours are the clinic's, where it is noon; see
``tests.e2e.flow.sending_zone``): no text is deferred. Measured per run: webhook ack latency, reply latency per
patient (post -> first send request of the reply at the fake Telnyx) during the load window and in the end,
replies per second, answered / doubled (more than one reply to one text: must be 0) / never answered, queue lengths
(LLEN per queue, unacked), CPU seconds per process group (from /proc), PostgreSQL backends active / waiting on a
lock, each task's run time (from the workers' logs). The machine's CPU that the stack did not use is split into
the other processes seen running (by command name), what no running process accounts for (kernel work charged to
nobody, processes that exited between two samples), and the processes started meanwhile.

Usage::

    .venv/bin/python bench/load.py                                   # all scenarios, rates 30,50,77, 60 s each
    .venv/bin/python bench/load.py --scenario sustained --rate 50 --seconds 60
    .venv/bin/python bench/load.py --scenario intro --burst-rate 77 --calls 30
    .venv/bin/python bench/load.py --workers worker=6,worker-inbound=2,worker-sms=2 --web-workers 2

Results: a table on stdout and JSON in ``--json`` (default bench/results/load.json; ``-`` for stdout).
Traffic goes only to 127.0.0.1; every loop is bounded in count and time.
"""

import argparse
import base64
import contextlib
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medspa.logging import redact  # noqa: E402  (after the path: the project's own redaction)

DATABASE_URL = "postgres://postgres@127.0.0.1:5432/medspa_load"
REDIS_URL = "redis://127.0.0.1:6379/7"
QUEUES = ("inbound", "ai", "sms", "priority", "default", "emr", "periodic")
# Production's worker layout (docker-compose.yml): queues as in tests/e2e/stack.py, prefork, these concurrencies.
DEFAULT_WORKERS = "worker=4,worker-sms=2,worker-inbound=2,worker-priority=2"
FIELD_KEY = base64.urlsafe_b64encode(b"medspa-load-bench-field-key-0001").decode()
CLINIC_NUMBER = "+12085550110"
AREA = "208"  # Idaho: America/Boise and America/Los_Angeles, so the clinic's zone decides (mid-day, below)
FIRST_TEXTS = [
    "how much is botox?",
    "do you have anything thursday?",
    "Hi! What does a HydraFacial cost?",
    "can i book lip filler next week?",
    "how much is lip filler",
    "do you have any openings tomorrow afternoon?",
    "what are your hours?",
    "is there parking near you?",
    "do you take walk-ins?",
    "how much for laser hair removal?",
    "I'd like to book a consultation",
    "how long does botox last?",
    "do you do microneedling?",
    "any availability friday morning for a facial?",
    "what's the price of dysport?",
    "is the deposit refundable?",
]
TASK_LINE = re.compile(r"Task ([\w.]+)\[[^\]]+\] succeeded in ([0-9.]+)s: (.*)$", re.MULTILINE)
NOTHING_DONE = {"'skipped'", "None"}  # a copy of a task whose work was already done (or taken by another run)
SWEEP_LINES = {
    "inbox_sweep_requeued": re.compile(r"inbox sweep queued (\d+) event"),
    "unanswered_requeued": re.compile(r"re-queued unanswered conversations=\[([^\]]*)\]"),
}


def percentile(values, p):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def dist(values, scale=1.0):
    """n, p50, p95, p99, max (scaled; None when empty)."""
    out = {"n": len(values)}
    for name, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100)):
        v = percentile(values, p)
        out[name] = None if v is None else round(v * scale, 4)
    return out


# --- The fake Telnyx API, with arrival times ------------------------------------------------------------------------


class StampedList(list):
    """The fake's list of send requests: each record gets its arrival time (wall clock, comparable across the
    processes of this machine) as it is recorded."""

    def append(self, record):
        record["at"] = time.time()
        super().append(record)


def serve_fake_telnyx(ready_file: str) -> int:
    """``tests/e2e/fakeproc.py telnyx``, plus arrival times and ``POST /_fake/sends {"since": n}`` (the records
    from index n, compact: recipient, idempotency key, arrival time, status)."""
    from http.server import ThreadingHTTPServer

    from tests.e2e import fakeproc

    fake, handler, control = fakeproc.build("telnyx")
    fake.requests = StampedList()

    def post_sends(body):
        since = int(body.get("since", 0))
        with fake.lock:
            records = fake.requests[since:]
            return [
                {
                    "to": (r.get("json") or {}).get("to"),
                    "key": (r.get("headers") or {}).get("Idempotency-Key", ""),
                    "at": r["at"],
                    "status": r.get("status"),
                }
                for r in records
            ]

    control.post_sends = post_sends
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    fake.server = server
    threading.Thread(target=fakeproc._exit_with_parent, args=(os.getppid(),), daemon=True).start()
    ready = Path(ready_file)
    temporary = ready.with_suffix(".tmp")
    temporary.write_text(json.dumps({"port": server.server_address[1], "pid": os.getpid()}))
    temporary.rename(ready)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(poll_interval=0.1)
    server.server_close()
    return 0


# --- The stack: tests/e2e/stack.py with production's settings and worker layout ------------------------------------


def make_stack_class():
    from tests.e2e import stack as e2e

    class LoadStack(e2e.Stack):
        workers: dict = None  # name -> concurrency
        pool: str = "prefork"
        web_workers: int = 3
        debounce: str = "1.0"

        def app_env(self, **overrides):
            env = super().app_env(
                DEBUG="False",
                SECRET_KEY="load-bench-" + "x" * 50,
                FIELD_ENCRYPTION_KEY=FIELD_KEY,
                SECURE_SSL_REDIRECT="False",
                BEHIND_TLS_PROXY="False",
                CONVERSATION_DEBOUNCE_SECONDS=self.debounce,
            )
            env.update(overrides)
            return env

        def _process(self, name, command, env):
            if name == "telnyx":  # the e2e fake, stamped (see serve_fake_telnyx)
                command = [sys.executable, str(Path(__file__).resolve()), "--serve-fake-telnyx", command[-1]]
            return super()._process(name, command, env)

        def gunicorn_command(self):
            command = [c for c in super().gunicorn_command() if not c.startswith("--workers=")]
            return [*command, f"--workers={self.web_workers}"]

        def worker_command(self, name):
            command = [c for c in super().worker_command(name) if not c.startswith(("--pool=", "--concurrency="))]
            return [*command, f"--pool={self.pool}", f"--concurrency={self.workers[name]}"]

    return LoadStack


def prepare_database(database_url, env):
    import psycopg

    base, name = database_url.rsplit("/", 1)
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    keep = ("django_migrations", "django_content_type", "auth_permission")
    with psycopg.connect(database_url, autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
            if r[0] not in keep
        ]
        conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")


def make_clinic(zone):
    """The demo clinic (fixtures/demo-clinic.json) in a zone where it is mid-day now, on CLINIC_NUMBER, with its
    providers working every day on the built-in calendar."""
    from datetime import time as clock

    from emr.models import Provider, WorkingHours
    from medspa.clinic_file import DEMO_CLINIC_FILE, clinic_file_load, clinic_file_read
    from messaging.models import PhoneNumber

    data = clinic_file_read(str(DEMO_CLINIC_FILE))
    data["clinic"] = {**data["clinic"], "slug": "load-bench", "timezone": zone, "state": "ID"}
    data["phone_numbers"] = [{**data["phone_numbers"][0], "number": CLINIC_NUMBER}]
    clinic = clinic_file_load(data).clinic
    for provider in Provider.objects.filter(clinic=clinic):
        WorkingHours.objects.filter(provider=provider).delete()
        WorkingHours.objects.bulk_create(
            WorkingHours(clinic=clinic, provider=provider, weekday=d, start=clock(9), end=clock(17)) for d in range(7)
        )
    PhoneNumber.objects.filter(number=CLINIC_NUMBER).update(messaging_profile_id="load-profile")
    return clinic


# --- Monitoring: fake's sends, queues, CPU per process group, PostgreSQL ------------------------------------------


def _proc_stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    head, _, rest = raw.rpartition(")")
    fields = rest.split()
    # after the comm: state(3) ppid(4) pgrp(5) session(6) ... utime(14) stime(15)
    return head.split("(", 1)[1], int(fields[3]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _machine_times():
    """The machine's CPU seconds so far: busy, and the kernel's part of it (system, irq, softirq) and steal."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    total = sum(values[:8])
    idle = values[3] + values[4]
    return {
        "busy": (total - idle) / tick,
        "system": values[2] / tick,
        "softirq": (values[5] + values[6]) / tick,
        "steal": values[7] / tick,
    }


class Monitor:
    """Samples every second, in a thread: the fake Telnyx's new send requests, LLEN of each queue and the unacked
    set, CPU seconds used since the last sample per process group, and (every 2 s) PostgreSQL's backends."""

    def __init__(self, stack, database_name, redis_client, database_url):
        self.stack, self.db, self.redis, self.database_url = stack, database_name, redis_client, database_url
        self.sends = []  # compact records from the fake, in arrival order
        self.samples = []  # {"t", "queues", "unacked", "cpu": {group: seconds}, "busy", "pg": {...}}
        self.cpu_seen = {}
        self.comms = {}
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.thread = None
        self.http = http.client.HTTPConnection("127.0.0.1", stack.telnyx.port, timeout=30)

    def groups(self):
        return {p.popen.pid: name for name, p in self.stack.processes.items() if p.popen is not None}

    def fetch_sends(self):
        body = json.dumps({"since": len(self.sends)}).encode()
        try:
            self.http.request("POST", "/_fake/sends", body=body, headers={"Content-Type": "application/json"})
            new = json.loads(self.http.getresponse().read())
        except (OSError, http.client.HTTPException):
            self.http.close()
            return
        with self.lock:
            self.sends.extend(new)

    def cpu_sample(self):
        """CPU seconds since the last sample: per group of the stack, and per command name of every other process
        (other users', exited ones excepted); and how many processes started meanwhile."""
        sessions = self.groups()
        used, other = defaultdict(float), defaultdict(float)
        seen = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            stat = _proc_stat(pid)
            if stat is None:
                continue
            comm, session, cpu = stat
            self.comms[pid] = comm
            if pid == os.getpid():
                group = "load generator"
            elif session in sessions:
                group = sessions[session]
                if group.startswith(("worker", "web")):  # the consumer / arbiter apart from its pool
                    group += "/main" if pid == session else "/pool"
            elif comm == "postgres":
                group = self.postgres_group(_cmdline(pid))
            elif comm == "redis-server":
                group = "redis"
            else:
                group = "other"
            seen[pid] = cpu
            previous = self.cpu_seen.get(pid)
            if self.cpu_seen:
                delta = cpu - (previous if previous is not None else 0.0)
                if group == "other":
                    other[comm] += delta
                else:
                    used[group] += delta
        started = defaultdict(int)  # command name -> processes that started since the last sample
        if self.cpu_seen:
            for pid in seen.keys() - self.cpu_seen.keys():
                started[self.comms.get(pid, "?")] += 1
        self.cpu_seen = seen
        return dict(used), {k: v for k, v in other.items() if v > 0}, dict(started)

    def postgres_group(self, cmdline):
        """A backend ("postgres: [cluster:] user DB host(port) state") or autovacuum worker of this benchmark's
        database: postgres; of another database: other; the server's own processes (WAL writer, checkpointer):
        postgres, shared by all but small."""
        words = cmdline.split()
        hosts = [i for i, w in enumerate(words) if "(" in w]
        if hosts and hosts[0] >= 1:
            return "postgres" if words[hosts[0] - 1] == self.db else "other"
        if "autovacuum" in words and "worker" in words:
            return "postgres" if words[-1] == self.db else "other"
        return "postgres"

    def pg_sample(self, conn):
        rows = conn.execute(
            "SELECT state, wait_event_type, count(*) FROM pg_stat_activity WHERE datname = %s GROUP BY 1, 2",
            (self.db,),
        ).fetchall()
        out = {"active": 0, "lock_wait": 0, "idle_in_tx": 0, "connections": 0}
        for state, wait, count in rows:
            out["connections"] += count
            if state == "active":
                out["active"] += count
                if wait == "Lock":
                    out["lock_wait"] += count
            elif state and state.startswith("idle in transaction"):
                out["idle_in_tx"] += count
        return out

    def run(self):
        import psycopg

        conn = psycopg.connect(self.database_url, autocommit=True)
        times = _machine_times()
        self.cpu_sample()
        tick = 0
        try:
            while not self.stop_event.wait(0.5):
                self.fetch_sends()
                tick += 1
                if tick % 2:
                    continue
                pipe = self.redis.pipeline()
                for q in QUEUES:
                    pipe.llen(q)
                pipe.hlen("unacked")
                lengths = pipe.execute()
                now_times = _machine_times()
                cpu, other, started = self.cpu_sample()
                sample = {
                    "t": time.time(),
                    "queues": dict(zip(QUEUES, lengths[:-1], strict=True)),
                    "unacked": lengths[-1],
                    "cpu": cpu,
                    "other": other,
                    "started": started,
                    "busy": now_times["busy"] - times["busy"],
                    "kernel": {k: now_times[k] - times[k] for k in ("system", "softirq", "steal")},
                }
                times = now_times
                if tick % 4 == 0:
                    sample["pg"] = self.pg_sample(conn)
                with self.lock:
                    self.samples.append(sample)
        finally:
            conn.close()

    def start(self):
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def stop(self):
        self.stop_event.set()
        self.thread.join(10)
        self.fetch_sends()

    def window(self, start, end):
        with self.lock:
            return [s for s in self.samples if start < s["t"] <= end + 0.5]

    def queues_empty(self):
        pipe = self.redis.pipeline()
        for q in QUEUES:
            pipe.llen(q)
        pipe.hlen("unacked")
        return not any(pipe.execute())


def cpu_summary(samples):
    total, other, kernel = defaultdict(float), defaultdict(float), defaultdict(float)
    busy, started = 0.0, defaultdict(int)
    for s in samples:
        busy += s["busy"]
        for comm, count in s.get("started", {}).items():
            started[comm] += count
        for group, seconds in s["cpu"].items():
            total[group] += seconds
        for comm, seconds in s.get("other", {}).items():
            other[comm] += seconds
        for name, seconds in s.get("kernel", {}).items():
            kernel[name] += seconds
    seconds = len(samples)  # one sample a second
    out = {g: round(v, 1) for g, v in sorted(total.items(), key=lambda kv: -kv[1])}
    ours = sum(total.values())
    by_process = defaultdict(float)
    for group, value in total.items():
        by_process[group.split("/")[0]] += value
    return {
        "seconds": seconds,
        "by_group": out,
        "by_process": {g: round(v, 1) for g, v in sorted(by_process.items(), key=lambda kv: -kv[1])},
        "ours": round(ours, 1),
        "machine_busy": round(busy, 1),
        "others": round(max(0.0, busy - ours), 1),
        # Of "others": other processes that were running when sampled (by command name; other users' test runs,
        # the machine's services), and what no running process accounts for (the kernel's softirq work for the
        # loopback traffic is charged to whichever process it interrupts; processes that exited in between).
        "others_by_command": {c: round(v, 1) for c, v in sorted(other.items(), key=lambda kv: -kv[1])[:8]},
        "others_unattributed": round(max(0.0, busy - ours - sum(other.values())), 1),
        "processes_started": dict(sorted(started.items(), key=lambda kv: -kv[1])[:8]),
        "machine_kernel": {k: round(v, 1) for k, v in kernel.items()},
        "cores_used": round(busy / seconds, 2) if seconds else None,
    }


def queue_summary(samples):
    out = {}
    for q in ("inbound", "ai", "sms"):
        values = [s["queues"][q] for s in samples]
        out[q] = {"max": max(values, default=0), "last": values[-1] if values else 0}
    out["unacked_max"] = max((s["unacked"] for s in samples), default=0)
    pg = [s["pg"] for s in samples if "pg" in s]
    if pg:
        out["pg_active_max"] = max(p["active"] for p in pg)
        out["pg_active_mean"] = round(statistics.mean(p["active"] for p in pg), 1)
        out["pg_lock_wait_max"] = max(p["lock_wait"] for p in pg)
        out["pg_connections_max"] = max(p["connections"] for p in pg)
    return out


def series(samples, start, every=5):
    """Queue lengths every ``every`` seconds, relative to ``start``."""
    out, last = [], None
    for s in samples:
        t = round(s["t"] - start)
        if last is None or t - last >= every:
            out.append({"t": t, **{q: s["queues"][q] for q in ("inbound", "ai", "sms")}, "unacked": s["unacked"]})
            last = t
    return out


def task_times(stack, offsets):
    """Each task's run time (Celery's 'succeeded in') from the workers' logs since ``offsets``, how many runs found
    nothing to do (a copy: 'skipped' or None), and what the sweeps queued again."""
    times, idle = defaultdict(list), defaultdict(int)
    sweeps = dict.fromkeys(SWEEP_LINES, 0)
    for name in ("worker", "worker-sms", "worker-inbound", "worker-priority"):
        process = stack.processes[name]
        with open(process.log, "rb") as f:
            f.seek(offsets.get(name, 0))
            text = f.read().decode(errors="replace")
        for match in TASK_LINE.finditer(text):
            times[match.group(1)].append(float(match.group(2)))
            idle[match.group(1)] += match.group(3).strip() in NOTHING_DONE
        for key, pattern in SWEEP_LINES.items():
            for match in pattern.finditer(text):
                value = match.group(1)  # a count (inbox) or a list of ids (unanswered): "[411]" is one id, not 411
                sweeps[key] += (
                    int(value) if key == "inbox_sweep_requeued" else len([v for v in value.split(",") if v.strip()])
                )
    tasks = {
        task: {
            **dist(v, 1000),
            "mean": round(statistics.mean(v) * 1000, 2),
            "busy_s": round(sum(v), 1),
            "nothing_to_do": idle[task],
        }
        for task, v in sorted(times.items())
    }
    return tasks, sweeps


def log_problems(stack, offsets):
    problems = []
    for name, process in stack.processes.items():
        with open(process.log, "rb") as f:
            f.seek(offsets.get(name, 0))
            text = f.read().decode(errors="replace")
        for line in text.splitlines():
            if "Traceback" in line or " ERROR " in line or "CRITICAL" in line:
                problems.append(f"{name}: {line[:300]}")
    return problems


# --- Load generation ------------------------------------------------------------------------------------------------


class Numbers:
    """Distinct, valid patient numbers of area code 208 whose exchange libphonenumber gives both of Idaho's zones
    (so quiet hours are decided in the clinic's zone, where it is mid-day); never 555-01xx (the e2e scenarios')."""

    def __init__(self):
        self.candidates = self._candidates()
        self.lock = threading.Lock()

    @staticmethod
    def _candidates():
        import phonenumbers
        from phonenumbers import timezone as number_zones

        for exchange in [555, *range(200, 1000)]:
            for line in range(10000):
                if exchange == 555 and line < 200:
                    continue
                text = f"+1{AREA}{exchange}{line:04d}"
                number = phonenumbers.parse(text)
                if phonenumbers.is_valid_number(number) and len(number_zones.time_zones_for_number(number)) > 1:
                    yield text

    def take(self, count):
        with self.lock:
            return [next(self.candidates) for _ in range(count)]


def signed(raw: bytes) -> dict:
    from tests.messaging_helpers import telnyx_headers

    headers = {k[5:].replace("_", "-").lower(): v for k, v in telnyx_headers(raw).items()}
    return {**headers, "Content-Type": "application/json"}


def text_body(phone, text):
    from tests.messaging_helpers import telnyx_inbound

    event = telnyx_inbound(text, from_=phone, to=CLINIC_NUMBER)
    event["data"]["occurred_at"] = datetime.now(UTC).isoformat(timespec="milliseconds")
    return "/webhooks/telnyx/messages", json.dumps(event).encode()


def hangup_body(phone):
    from tests.messaging_helpers import telnyx_envelope

    payload = {
        "call_control_id": f"v3:{uuid.uuid4().hex}",
        "call_session_id": str(uuid.uuid4()),
        "call_leg_id": str(uuid.uuid4()),
        "connection_id": "load-connection",
        "direction": "incoming",
        "from": phone,
        "to": CLINIC_NUMBER,
        "hangup_cause": "no_answer",
        "hangup_source": "callee",
        "start_time": datetime.now(UTC).isoformat(),
    }
    return "/webhooks/telnyx/voice", json.dumps(telnyx_envelope("call.hangup", payload)).encode()


PRESIGN_S = 200  # the Telnyx signature's 300 s tolerance, less the time it takes to build them and a margin


def _request(kind, phone, text):
    path, raw = text_body(phone, text) if kind == "text" else hangup_body(phone)
    return path, raw, signed(raw)


def post_schedule(port, jobs, concurrency, stop_after):
    """Open loop: ``jobs`` is [(offset s, kind, phone, text)], sorted; ``concurrency`` threads post each at
    t0 + offset (late when every thread is busy: the lateness is recorded). Posting stops at t0 + ``stop_after``.
    Returns (t0 wall, [result dicts])."""
    results = [None] * len(jobs)
    # Bodies built and signed before the window (Telnyx accepts a signature's timestamp for 5 minutes): the load
    # generator's own CPU during the window is the posting, not the Ed25519 signing and JSON encoding. Those due
    # later than PRESIGN_S into the window are built when due.
    prepared = [_request(kind, phone, text) if offset < PRESIGN_S else None for offset, kind, phone, text in jobs]
    cursor = iter(range(len(jobs)))
    cursor_lock = threading.Lock()
    t0 = time.time() + 0.2

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with cursor_lock:
                index = next(cursor, None)
            if index is None:
                break
            offset, kind, phone, text = jobs[index]
            due = t0 + offset
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            if time.time() > t0 + stop_after:
                results[index] = {"kind": kind, "phone": phone, "posted": None}
                continue
            path, raw, headers = prepared[index] or _request(kind, phone, text)
            posted = time.time()
            started = time.perf_counter()
            status, error = None, ""
            for _attempt in range(2):
                try:
                    conn.request("POST", path, body=raw, headers=headers)
                    response = conn.getresponse()
                    response.read()
                    status = response.status
                    break
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    error = type(exc).__name__
            results[index] = {
                "kind": kind,
                "phone": phone,
                "posted": posted,
                "late": posted - due,
                "ack": time.perf_counter() - started,
                "status": status,
                "error": error,
            }
        conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(stop_after + 60)
    return t0, results


def run_load(stack, monitor, numbers, *, label, rate, seconds, calls, concurrency, timeout, settle):
    """One measured run; returns its result dict."""
    count = int(rate * seconds)
    patients = numbers.take(count)
    callers = numbers.take(calls)
    jobs = [(i / rate, "text", patients[i], FIRST_TEXTS[i % len(FIRST_TEXTS)]) for i in range(count)]
    jobs += [((k + 0.5) * seconds / calls, "call", callers[k], "") for k in range(calls)] if calls else []
    jobs.sort(key=lambda j: j[0])
    offsets = {name: p.log.stat().st_size for name, p in stack.processes.items()}
    print(
        f"[{label}] {count} texts at {rate}/s for {seconds} s" + (f", {calls} missed calls" if calls else ""),
        flush=True,
    )
    t0, posts = post_schedule(stack.web_port, jobs, concurrency, stop_after=seconds + 30)
    load_end = time.time()
    # After the load: until every patient and caller has had a send request, or the timeout.
    wanted = {p["phone"] for p in posts if p and p["posted"] is not None and p["status"] == 200}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with monitor.lock:
            got = {s["to"] for s in monitor.sends}
        if wanted <= got:
            break
        time.sleep(0.5)
    drained = time.time()
    time.sleep(settle)  # late doubles would arrive now
    monitor.fetch_sends()
    with monitor.lock:
        sends = list(monitor.sends)
    return analyse(stack, monitor, label, rate, seconds, calls, posts, sends, t0, load_end, drained, offsets)


def analyse(stack, monitor, label, rate, seconds, calls, posts, sends, t0, load_end, drained, offsets):
    by_phone = defaultdict(list)
    for s in sends:
        by_phone[s["to"]].append(s)
    texts = [p for p in posts if p and p["kind"] == "text"]
    posted = [p for p in texts if p["posted"] is not None]
    accepted = [p for p in posted if p["status"] == 200]
    latencies_all, latencies_window, never, doubled, answered_at = [], [], [], [], []
    buckets = defaultdict(list)
    for p in accepted:
        mine = sorted(by_phone.get(p["phone"], []), key=lambda s: s["at"])
        keys = [s["key"] for s in mine]
        replies = {k.split("#", 1)[0] for k in keys}
        if len(replies) > 1 or len(keys) != len(set(keys)):
            doubled.append(p["phone"])
        if not mine:
            never.append(p["phone"])
            continue
        latency = mine[0]["at"] - p["posted"]
        latencies_all.append(latency)
        answered_at.append(mine[0]["at"])
        if mine[0]["at"] <= load_end:
            latencies_window.append(latency)
        buckets[int((p["posted"] - t0) // 10) * 10].append(latency)
    window = load_end - t0
    in_window = sum(1 for a in answered_at if a <= load_end)
    # Steady state: replies sent in the second half of the load window (the pipeline is full by then).
    half = t0 + window / 2
    steady = sum(1 for a in answered_at if half < a <= load_end) / (load_end - half)
    after = [a for a in answered_at if a > load_end]
    result = {
        "label": label,
        "rate": rate,
        "seconds": seconds,
        "texts_scheduled": len(texts),
        "texts_posted": len(posted),
        "texts_accepted": len(accepted),
        "post_rate": round(len(posted) / max(1e-9, max(p["posted"] for p in posted) - t0), 1) if posted else 0,
        "post_late_max_s": round(max((p["late"] for p in posted), default=0), 3),
        "post_errors": sum(1 for p in posted if p["status"] != 200),
        "ack_ms": dist([p["ack"] for p in posted if p["status"] == 200], 1000),
        "answered": len(latencies_all),
        "never_answered": len(never),
        "doubled": len(doubled),
        "reply_s_window": dist(latencies_window),
        "reply_s_all": dist(latencies_all),
        # Over every patient, the unanswered counted as later than anyone answered (None: beyond the timeout).
        "reply_s_every_patient": {
            k: (None if v is None or v == float("inf") else v)
            for k, v in dist(latencies_all + [float("inf")] * len(never)).items()
        },
        "replies_per_s_window": round(in_window / window, 1),
        "replies_per_s_steady": round(steady, 1),
        "drain_after_load_s": round(max(after) - load_end, 1) if after else 0.0,
        "drain_rate": round(len(after) / (max(after) - load_end), 1) if len(after) > 10 else None,
        "reply_s_by_post_time": {
            f"{k}-{k + 10}s": {"n": len(v), "p50": round(percentile(v, 50), 2), "p95": round(percentile(v, 95), 2)}
            for k, v in sorted(buckets.items())
        },
    }
    if calls:
        calls_posted = [p for p in posts if p and p["kind"] == "call" and p["posted"] is not None]
        intro = []
        missing = 0
        for p in calls_posted:
            mine = sorted(by_phone.get(p["phone"], []), key=lambda s: s["at"])
            if not mine:
                missing += 1
                continue
            intro.append(mine[0]["at"] - p["posted"])
            if len({s["key"] for s in mine}) != len(mine) or len(mine) > 1:
                doubled.append(p["phone"])
        result["intro_s"] = dist(intro)
        result["intro_missing"] = missing
        result["intro_ack_ms"] = dist([p["ack"] for p in calls_posted if p["status"] == 200], 1000)
        result["doubled"] = len(doubled)
    load_samples = monitor.window(t0, load_end)
    result["cpu_load"] = cpu_summary(load_samples)
    result["cpu_drain"] = cpu_summary(monitor.window(load_end, drained))
    result["queues"] = queue_summary(monitor.window(t0, drained))
    result["queue_series"] = series(monitor.window(t0, drained), t0)
    result["tasks_ms"], result["sweeps"] = task_times(stack, offsets)
    problems = log_problems(stack, offsets)
    result["log_problems"] = len(problems)
    # Log lines go into the printed and saved results: masked like any log record (phones, e-mails, query strings).
    result["log_problem_sample"] = [redact(line) for line in problems[:5]]
    whole = cpu_summary(monitor.window(t0, drained))
    answered = len(latencies_all) + (result["intro_s"]["n"] if calls else 0)
    result["cpu_ms_per_answer"] = (
        {g: round(v * 1000 / answered, 1) for g, v in whole["by_group"].items()} if answered else {}
    )
    result["cpu_ms_per_answer_total"] = round(whole["ours"] * 1000 / answered, 1) if answered else None
    # The stack alone (not the load generator or the fakes, which stand for the patients and the providers), and
    # what two cores could answer per second at that CPU cost per answer if the stack had them to itself.
    stack_cpu = sum(v for g, v in whole["by_process"].items() if g not in ("load generator", *e2e_fakes()))
    result["cpu_ms_per_answer_stack"] = round(stack_cpu * 1000 / answered, 1) if answered else None
    result["capacity_2_cores_per_s"] = round(2000 / result["cpu_ms_per_answer_stack"], 1) if answered else None
    return result


def e2e_fakes():
    from tests.e2e.stack import FAKES

    return FAKES


def backlog(database_url):
    """Work the database says is still to do: events not processed, texts not sent, patients' texts unanswered."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        return {
            "events": conn.execute(
                "SELECT count(*) FROM inbox_webhookevent WHERE status IN ('pending', 'processing')"
            ).fetchone()[0],
            "texts_to_send": conn.execute(
                "SELECT count(*) FROM messaging_message WHERE direction = 'outbound' AND status IN ('queued', 'sending')"
            ).fetchone()[0],
            "unanswered": conn.execute(
                "SELECT count(*) FROM messaging_message m JOIN conversation_conversation c ON c.id = m.conversation_id "
                "WHERE m.direction = 'inbound' AND m.kind = 'patient' AND m.id > c.handled_through AND c.owner = "
                "'assistant' AND c.state <> 'opted_out' AND NOT EXISTS (SELECT 1 FROM conversation_turn_inbound t "
                "WHERE t.message_id = m.id)"
            ).fetchone()[0],
        }


def abandon_backlog(monitor, database_url):
    """After a run that ended with work left (its timeout passed): drop that work, so the next run starts from an
    idle stack. Queued tasks are deleted from Redis, and in this benchmark's database the events left are marked
    ignored, the texts left dropped and the texts left unanswered handed to staff (so no sweep queues them again).
    Returns what was dropped."""
    import psycopg

    left = backlog(database_url)
    if not any(left.values()):
        return {}
    monitor.redis.delete(*QUEUES, "unacked", "unacked_index")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE inbox_webhookevent SET status = 'ignored' WHERE status IN ('pending', 'processing')")
        conn.execute(
            "UPDATE messaging_message SET status = 'dropped' WHERE direction = 'outbound' "
            "AND status IN ('queued', 'sending')"
        )
        conn.execute("UPDATE conversation_conversation SET handled_through = (SELECT max(id) FROM messaging_message)")
    return left


def wait_quiet(monitor, database_url, seconds=120):
    """Until no task is queued or held and the database has nothing left to do (two checks in a row), at most
    ``seconds``; returns what was still left then (empty: quiet)."""
    deadline = time.monotonic() + seconds
    quiet = 0
    left = {}
    while time.monotonic() < deadline and quiet < 2:
        left = backlog(database_url)
        quiet = quiet + 1 if monitor.queues_empty() and not any(left.values()) else 0
        time.sleep(1)
    return {} if quiet >= 2 else left


def db_checks(database_url):
    """Cross-check with the database: turns and outbound replies per conversation, events not processed."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        many_turns = conn.execute(
            "SELECT count(*) FROM (SELECT conversation_id FROM conversation_turn GROUP BY 1 HAVING count(*) > 1) t"
        ).fetchone()[0]
        events = dict(conn.execute("SELECT status, count(*) FROM inbox_webhookevent GROUP BY 1").fetchall())
        messages = dict(
            conn.execute("SELECT status, count(*) FROM messaging_message WHERE direction = 'outbound' GROUP BY 1")
        )
        engines = dict(conn.execute("SELECT engine, count(*) FROM conversation_turn GROUP BY 1").fetchall())
    return {
        "conversations_with_more_than_one_turn": many_turns,
        "webhook_events": events,
        "outbound_messages": messages,
        "turns_by_engine": engines,
    }


# --- Where a reply's CPU goes: each stage in this process, with the workers stopped --------------------------------


def profile_stages(stack, numbers, count, out_dir):
    """With the workers and beat stopped: ``count`` first texts (every tenth a missed call instead) posted to the
    running web process, then each stage run here in turn, as the workers run it: the inbound event
    (``inbox.process_event``), the turn (``conversation.respond``), the send to the fake Telnyx
    (``messaging.send_message``). Thread CPU time and queries per stage (items of even index), and a CPU-time
    profile of each stage (cProfile timed by ``time.thread_time``, items of odd index) in ``out_dir``."""
    import cProfile
    import io
    import pstats

    from django.db import connection

    from conversation.engine import conversation_respond
    from conversation.models import Conversation
    from inbox.models import WebhookEvent
    from inbox.services import event_process
    from messaging.models import Message
    from messaging.services import message_send

    for name in ("beat", "worker", "worker-sms", "worker-inbound", "worker-priority"):
        stack.processes[name].stop()
    profilers = defaultdict(lambda: cProfile.Profile(time.thread_time))
    cpu, queries = defaultdict(list), defaultdict(list)
    counter = {"n": 0}

    def count_queries(execute, sql, params, many, context):
        counter["n"] += 1
        return execute(sql, params, many, context)

    def stage(name, fn, profiled):
        if profiled:
            profilers[name].runcall(fn)
            return
        counter["n"] = 0
        started = time.thread_time()
        with connection.execute_wrapper(count_queries):
            fn()
        cpu[name].append(time.thread_time() - started)
        queries[name].append(counter["n"])

    conn = http.client.HTTPConnection("127.0.0.1", stack.web_port, timeout=30)
    for i, phone in enumerate(numbers.take(count)):
        calling, profiled = i % 10 in (4, 9), i % 2 == 1
        path, raw = hangup_body(phone) if calling else text_body(phone, FIRST_TEXTS[i % len(FIRST_TEXTS)])
        conn.request("POST", path, body=raw, headers=signed(raw))
        conn.getresponse().read()
        pk = WebhookEvent.objects.get(event_id=json.loads(raw)["data"]["id"]).pk
        stage("inbound", lambda pk=pk: event_process(event_id=pk), profiled)
        conversation = Conversation.objects.get(patient_phone=phone)
        if not calling:
            stage("ai", lambda c=conversation: conversation_respond(conversation_id=c.pk), profiled)
        for message in Message.objects.filter(conversation=conversation, direction="outbound", status="queued"):
            stage("sms" if not calling else "sms (intro)", lambda m=message: message_send(message_id=m.pk), profiled)
    # What-if, in this process only (production code unchanged): the same sends with one Telnyx client reused.
    from functools import cache

    from messaging.backends import telnyx as telnyx_backend

    original, telnyx_backend.client = telnyx_backend.client, cache(telnyx_backend.client)
    try:
        for phone in numbers.take(max(10, count // 4)):
            path, raw = text_body(phone, FIRST_TEXTS[0])
            conn.request("POST", path, body=raw, headers=signed(raw))
            conn.getresponse().read()
            pk = WebhookEvent.objects.get(event_id=json.loads(raw)["data"]["id"]).pk
            event_process(event_id=pk)
            conversation = Conversation.objects.get(patient_phone=phone)
            conversation_respond(conversation_id=conversation.pk)
            for message in Message.objects.filter(conversation=conversation, direction="outbound", status="queued"):
                stage("sms, what-if: Telnyx client reused", lambda m=message: message_send(message_id=m.pk), False)
    finally:
        telnyx_backend.client = original
    conn.close()
    report = {
        name: {
            "n": len(values),
            "cpu_ms_p50": round(percentile(values, 50) * 1000, 1),
            "cpu_ms_mean": round(statistics.mean(values) * 1000, 1),
            "queries_mean": round(statistics.mean(queries[name]), 1),
        }
        for name, values in cpu.items()
    }
    for name, profiler in sorted(profilers.items()):
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).sort_stats("cumulative").print_stats(60)
        if os.environ.get("LOAD_PSTATS_DIR"):  # the raw profile too, to sort another way (python -m pstats)
            profiler.dump_stats(Path(os.environ["LOAD_PSTATS_DIR"]) / f"{name.split()[0].strip(',')}.pstats")
        path = Path(out_dir) / f"load-profile-{name.split()[0]}{'-intro' if 'intro' in name else ''}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(buffer.getvalue().replace(str(ROOT) + "/", ""))
        report.setdefault(name, {})["profile"] = str(path.relative_to(ROOT))
    return report


# --- Output -------------------------------------------------------------------------------------------------------


def fmt(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"


def print_table(results):
    print(
        "\n| run | target/s | posted/s | ack p50/p95 ms | replies/s window (steady) | reply p50 / p95 / max s "
        "(in window) | reply p50 / p95 / max s (all) | answered | doubled | never | drain s | intro p50/p95/max s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        w, a = r["reply_s_window"], r["reply_s_all"]
        intro = r.get("intro_s")
        intro_text = f"{fmt(intro['p50'])} / {fmt(intro['p95'])} / {fmt(intro['max'])}" if intro else ""
        print(
            f"| {r['label']} | {r['rate']} | {r['post_rate']} | {fmt(r['ack_ms']['p50'], 0)} / "
            f"{fmt(r['ack_ms']['p95'], 0)} | {r['replies_per_s_window']} ({r['replies_per_s_steady']}) | "
            f"{fmt(w['p50'])} / {fmt(w['p95'])} / {fmt(w['max'])} (n={w['n']}) | "
            f"{fmt(a['p50'])} / {fmt(a['p95'])} / {fmt(a['max'])} | {r['answered']}/{r['texts_accepted']} | "
            f"{r['doubled']} | {r['never_answered']} | {r['drain_after_load_s']} | {intro_text} |"
        )
    for r in results:
        cpu = r["cpu_load"]
        groups = ", ".join(f"{g} {v}" for g, v in cpu["by_group"].items() if v >= 0.1)
        print(
            f"\n{r['label']}: CPU during the load ({cpu['seconds']} s): machine {cpu['machine_busy']} s "
            f"({cpu['cores_used']} cores), others on the machine {cpu['others']} s; {groups}"
        )
        print(
            f"  others: {cpu.get('others_by_command')}, unattributed {cpu.get('others_unattributed')} s, "
            f"processes started {cpu.get('processes_started')}; machine's kernel time {cpu.get('machine_kernel')}"
        )
        per = ", ".join(f"{g} {v}" for g, v in r["cpu_ms_per_answer"].items() if v >= 0.1)
        print(
            f"  CPU ms per answer (load + drain): {r['cpu_ms_per_answer_total']}, the stack alone "
            f"{r['cpu_ms_per_answer_stack']} ({per}); at that cost 2 cores to itself answer "
            f"{r['capacity_2_cores_per_s']}/s"
        )
        q = r["queues"]
        print(
            f"  queues max: inbound {q['inbound']['max']}, ai {q['ai']['max']}, sms {q['sms']['max']}, unacked "
            f"{q['unacked_max']}; pg active max {q.get('pg_active_max')}, mean {q.get('pg_active_mean')}, "
            f"lock waits max {q.get('pg_lock_wait_max')}"
        )
        tasks = ", ".join(
            f"{t} p50 {fmt(v['p50'], 1)} ms p95 {fmt(v['p95'], 1)} ms (n={v['n']}, nothing to do {v['nothing_to_do']})"
            for t, v in r["tasks_ms"].items()
            if t.startswith(("inbox.process", "conversation.respond", "messaging.send_message"))
        )
        print(f"  task run times: {tasks}; sweeps queued again: {r['sweeps']}")
        print(f"  latency by post time: {r['reply_s_by_post_time']}")
        if r["log_problems"]:
            print(f"  {r['log_problems']} error lines in the logs, e.g. {r['log_problem_sample'][:2]}")


# --- Main -----------------------------------------------------------------------------------------------------------


def parse_workers(text):
    workers = dict(item.split("=", 1) for item in DEFAULT_WORKERS.split(","))
    for item in filter(None, (text or "").split(",")):
        name, value = item.split("=", 1)
        if name not in workers:
            raise SystemExit(
                f"--workers: unknown worker {name!r} (worker, worker-sms, worker-inbound, worker-priority)"
            )
        workers[name] = value
    return workers


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenario",
        choices=["all", "sustained", "low", "intro", "none"],
        default="all",
        help="none: no load (with --profile: only the per-stage profile)",
    )
    parser.add_argument("--rate", default="30,50,77", help="sustained: inbound texts per second (comma-separated)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each load window")
    parser.add_argument("--low-rate", type=float, default=10.0)
    parser.add_argument("--burst-rate", help="intro: texts/s of the burst, comma-separated (default: max --rate)")
    parser.add_argument("--calls", type=int, default=30, help="intro: missed calls during the burst")
    parser.add_argument("--concurrency", type=int, default=16, help="client threads posting webhooks")
    parser.add_argument("--timeout", type=float, default=300.0, help="wait for the last answers after the load")
    parser.add_argument("--repeat", type=int, default=1, help="measure each run this many times")
    parser.add_argument("--workers", default="", help=f"concurrency per worker (default {DEFAULT_WORKERS})")
    parser.add_argument("--pool", default="prefork", choices=["prefork", "threads"])
    parser.add_argument("--web-workers", type=int, default=3, help="gunicorn workers (docker-compose: 3)")
    parser.add_argument("--debounce", default="1.0", help="CONVERSATION_DEBOUNCE_SECONDS (production default 1.0)")
    parser.add_argument(
        "--profile", type=int, default=0, help="then stop the workers and run N texts' stages here (CPU, queries)"
    )
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "load.json"), help="'-': stdout")
    parser.add_argument("--database-url", default=DATABASE_URL)
    parser.add_argument("--redis-url", default=REDIS_URL)
    parser.add_argument("--serve-fake-telnyx", metavar="READY_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_fake_telnyx:
        return serve_fake_telnyx(args.serve_fake_telnyx)
    for url in (args.database_url, args.redis_url):
        if "127.0.0.1" not in url and "localhost" not in url:
            raise SystemExit(f"{url}: this benchmark runs on this machine only")
    rates = [float(r) for r in args.rate.split(",")]
    burst = [float(b) for b in args.burst_rate.split(",")] if args.burst_rate else [max(rates)]

    return run(args, rates, burst)


def run(args, rates, burst):
    import redis

    database_name = args.database_url.rsplit("/", 1)[1]
    base_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TELNYX_", "OPENAI_", "CONVERSATION_"))},
        "DJANGO_SETTINGS_MODULE": "medspa.settings",
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "DEBUG": "False",
        "SECRET_KEY": "load-bench-" + "x" * 50,
        "FIELD_ENCRYPTION_KEY": FIELD_KEY,
    }
    prepare_database(args.database_url, base_env)
    client = redis.Redis.from_url(args.redis_url)
    client.flushdb()  # this benchmark's own Redis database: no task or cache entry of an earlier run

    from tests.messaging_helpers import TELNYX_PUBLIC

    stack_class = make_stack_class()
    tmp = Path(tempfile.mkdtemp(prefix="medspa-load-"))
    stack = stack_class(tmp=tmp, database_url=args.database_url, redis_url=args.redis_url)
    stack.workers = parse_workers(args.workers)
    stack.pool, stack.web_workers, stack.debounce = args.pool, args.web_workers, args.debounce
    results, checks, profile = [], {}, {}
    started = datetime.now(UTC)
    try:
        stack.start(telnyx_public_key=TELNYX_PUBLIC)
        print(f"stack up in {stack.started_in:.1f} s; logs in {tmp}", flush=True)
        os.environ.update(stack.app_env(LOG_LEVEL="WARNING"))  # this process: the clinic, the profile
        import django

        django.setup()
        from tests.e2e.flow import sending_zone

        zone = sending_zone()
        make_clinic(zone)
        monitor = Monitor(stack, database_name, client, args.database_url)
        monitor.start()
        numbers = Numbers()
        common = {"concurrency": args.concurrency, "timeout": args.timeout, "settle": 5.0}
        # Warm-up, not measured: every process imports, connects and builds its caches (knowledge index).
        run_load(stack, monitor, numbers, label="warm-up", rate=5, seconds=6, calls=2, **{**common, "timeout": 60})
        wait_quiet(monitor, args.database_url)
        plan = []
        if args.scenario in ("all", "low"):
            plan.append((f"low {args.low_rate:g}/s", args.low_rate, 0))
        if args.scenario in ("all", "sustained"):
            plan += [(f"sustained {r:g}/s", r, 0) for r in rates]
        if args.scenario in ("all", "intro"):
            plan += [(f"intro, burst {b:g}/s", b, args.calls) for b in burst]
        for repeat in range(args.repeat):
            for label, rate, calls in plan:
                name = label if args.repeat == 1 else f"{label} #{repeat + 1}"
                result = run_load(
                    stack, monitor, numbers, label=name, rate=rate, seconds=args.seconds, calls=calls, **common
                )
                result["abandoned_backlog"] = abandon_backlog(monitor, args.database_url)
                result["not_quiet_after"] = wait_quiet(monitor, args.database_url)
                results.append(result)
                print_table([result])
                if result["abandoned_backlog"]:
                    print(f"  work left when the timeout passed, dropped: {result['abandoned_backlog']}")
                time.sleep(3)
        monitor.stop()
        checks = db_checks(args.database_url)
        if args.profile:
            wait_quiet(monitor, args.database_url)
            profile = profile_stages(stack, numbers, args.profile, ROOT / "bench" / "results")
            print(f"\nper stage, in-process (thread CPU, queries): {json.dumps(profile, indent=1)}")
    finally:
        stack.stop()
        client.close()
    output = {
        "started": started.isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "note": "load generator and the whole stack on the same machine"},
        "settings": {
            "workers": stack.workers,
            "pool": args.pool,
            "web_workers": args.web_workers,
            "debounce_s": float(args.debounce),
            "concurrency": args.concurrency,
            "seconds": args.seconds,
            "clinic_zone": zone,
            "logs": str(tmp),
        },
        "results": results,
        "database_checks": checks,
        "stages": profile,
    }
    print("\n\n## All runs")
    print_table(results)
    print(f"\ndatabase: {checks}")
    text = json.dumps(output, indent=1)
    if args.json == "-":
        print(text)
    else:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
        print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
