"""The processes of an end-to-end run: the web app under gunicorn, Celery workers and beat, and one process per fake
provider, all started from the test process against the pytest test database (PostgreSQL) and Redis.

Layout (as docker-compose.yml runs production):

- ``web``: ``gunicorn medspa.wsgi:application`` on a free local port; PUBLIC_BASE_URL is its URL, so signatures and
  links are built for it;
- ``worker``: ``celery worker -Q default,ai,emr,periodic``; ``worker-sms``: ``celery worker -Q sms``;
  ``worker-inbound``: ``celery worker -Q inbound`` (webhook events);
- ``beat``: ``celery beat`` (deferred texts every 5 s, hold expiry and the payment outbox sweep every 30 s);
- ``telnyx``, ``square``, ``nextech``, ``openai``, ``boulevard``, ``zenoti``, ``square_appointments``: ``python -m
  tests.e2e.fakeproc KIND`` (see that module);
- ``redis``: the run's own ``redis-server`` on a free local port, without persistence (``--save "" --appendonly no``,
  as docker-compose.yml runs it), the broker and cache of every process above and of the test process. A scenario may
  flush it (``flush_redis``) or kill and start it again (``restart_redis``); CI's shared Redis is never touched.

Every process gets its own session (process group) and, on Linux, is told to terminate when the test run dies;
``Stack.stop`` ends each group by its id (TERM, then KILL). Logs go to files under the run's temporary directory
and their tails are attached to a failing test's report.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parents[2]
FAKES = ("telnyx", "square", "nextech", "openai", "boulevard", "zenoti", "square_appointments")
SQUARE_SIGNATURE_KEY = "e2e-square-signature-key"
TELNYX_API_KEY = "KEY_e2e_telnyx"
OPENAI_API_KEY = "sk-e2e-fake"
# Short, so a scenario's turns follow each other quickly; still long enough to join texts sent in a row.
DEBOUNCE_SECONDS = "0.2"
# The reconcile sweep's bound for texts stuck in sending / unknown: its floor (60 s, messaging.services), so the
# scenarios that strand a text wait one minute for it rather than two.
SMS_STUCK_SECONDS = "60"
REDIS_SERVER = shutil.which("redis-server") or ""
WORKERS = {
    # name: (queues, threads); the queues of docker-compose.yml's worker and worker-sms services
    "worker": ("default,ai,emr,periodic", "4"),
    "worker-sms": ("sms", "2"),
    "worker-inbound": ("inbound", "2"),
    "worker-priority": ("priority", "2"),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent():  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Process:
    name: str
    command: list
    env: dict
    log: Path
    popen: subprocess.Popen | None = None
    log_file: object = None

    def start(self):
        self.log_file = open(self.log, "ab")  # noqa: SIM115 (closed in stop)
        self.popen = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # no threads of ours run in the test process when it forks
        )
        return self

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal_group(self, signum):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)

    def kill(self):
        """SIGKILL, no goodbye: what a crash or the OOM killer does."""
        self.signal_group(signal.SIGKILL)
        self.popen.wait(timeout=10)
        self.log_file.close()

    def stop(self, grace=10.0):
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.popen.wait(timeout=10)
            self.signal_group(signal.SIGKILL)  # anything of its group still there (gunicorn's workers)
        if self.log_file and not self.log_file.closed:
            self.log_file.close()

    def tail(self, lines=40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class FakeClient:
    """A fake provider in another process, read and steered over HTTP (its /_fake/ endpoints)."""

    def __init__(self, kind, port):
        self.kind, self.port = kind, port
        self.root = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.root, timeout=10)

    def _control(self, method, name, body=None):
        response = self.http.request(method, f"/_fake/{name}", json=body)
        response.raise_for_status()
        return response.json()

    def calls(self) -> list:
        return self._control("GET", "calls")

    def state(self) -> dict:
        return self._control("GET", "state")

    def reset(self):
        return self._control("POST", "reset")

    def fail(self, status, times=1, **extra):
        return self._control("POST", "fail", {"status": status, "times": times, **extra})

    def config(self, **knobs):
        return self._control("POST", "config", knobs)

    def pay(self, url) -> dict:
        return self._control("POST", "pay", {"url": url})

    def add_patient(self, first, last, phone="") -> str:
        return self._control("POST", "patient", {"first": first, "last": last, "phone": phone})["id"]

    def schedule(self, times):
        """Boulevard, Zenoti, Square Appointments: the open times (aware datetimes; Zenoti's on the center's clock)."""
        return self._control("POST", "schedule", {"times": [t.isoformat() for t in times]})

    def script(self, *items):
        return self._control("POST", "script", {"items": list(items)})

    def set_status(self, message_id, status):
        """Telnyx: what became of an accepted text at the carrier (what GET /v2/messages/{id} answers)."""
        return self._control("POST", "status", {"id": message_id, "status": status})


@dataclass
class Stack:
    tmp: Path
    database_url: str
    redis_url: str = ""  # set by start_redis: the run's own redis-server
    web_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    processes: dict = field(default_factory=dict)
    fakes: dict = field(default_factory=dict)
    started_in: float = 0.0
    telnyx_public_key: str = ""
    versions: str = ""
    scenario_log_offsets: dict = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def telnyx(self) -> FakeClient:
        return self.fakes["telnyx"]

    @property
    def square(self) -> FakeClient:
        return self.fakes["square"]

    @property
    def nextech(self) -> FakeClient:
        return self.fakes["nextech"]

    @property
    def openai(self) -> FakeClient:
        return self.fakes["openai"]

    @property
    def boulevard(self) -> FakeClient:
        return self.fakes["boulevard"]

    @property
    def zenoti(self) -> FakeClient:
        return self.fakes["zenoti"]

    @property
    def square_appointments(self) -> FakeClient:
        return self.fakes["square_appointments"]

    # --- environment ---------------------------------------------------------------------------------------------

    def app_env(self, **overrides) -> dict:
        """The environment of the app's processes: the test database, Redis, every provider at its fake."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TELNYX_", "TWILIO_", "SQUARE_", "OPENAI_", "CONVERSATION_", "PYTEST_"))
        }
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "medspa.settings",
                "PYTHONUNBUFFERED": "1",
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.redis_url,
                "DEBUG": "true",
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "PUBLIC_BASE_URL": self.base_url,
                "LOG_LEVEL": "INFO",
                "SMS_STUCK_SECONDS": SMS_STUCK_SECONDS,
                # The texts after a booking follow medspa.clock, which a scenario moves forward (never by sleeping).
                "CONTROLLABLE_CLOCK": "true",
                # Texts: each clinic number's provider (Telnyx), at the fake.
                "SMS_BACKEND": "",
                "TELNYX_API_KEY": TELNYX_API_KEY,
                "TELNYX_PUBLIC_KEY": self.telnyx_public_key,
                "TELNYX_BASE_URL": f"{self.telnyx.root}/v2",
                "TWILIO_ACCOUNT_SID": "",
                "TWILIO_AUTH_TOKEN": "",
                # Deposits: Square (each clinic's own token, set in its payment configuration), at the fake.
                "SQUARE_ACCESS_TOKEN": "",
                "SQUARE_LOCATION_ID": "",
                "SQUARE_BASE_URL": self.square.root,
                "SQUARE_WEBHOOK_SIGNATURE_KEY": SQUARE_SIGNATURE_KEY,
                "SQUARE_WEBHOOK_URL": f"{self.base_url}/webhooks/square",
                "PAYMENTS_SANDBOX_ENABLED": "false",
                # The assistant: the rules engine unless a scenario asks for the LLM (whose fake is always up).
                "CONVERSATION_ENGINE": "rules",
                "CONVERSATION_DEBOUNCE_SECONDS": DEBOUNCE_SECONDS,
                "OPENAI_API_KEY": "",
                "OPENAI_BASE_URL": self.openai.root + "/v1",
            }
        )
        env.update(overrides)
        return env

    # --- processes -----------------------------------------------------------------------------------------------

    def _process(self, name, command, env) -> Process:
        process = Process(name=name, command=command, env=env, log=self.tmp / f"{name}.log")
        self.processes[name] = process
        return process.start()

    def start(self, *, telnyx_public_key: str):
        started = time.monotonic()
        self.telnyx_public_key = telnyx_public_key
        ready_files = {}
        for kind in FAKES:
            ready_files[kind] = self.tmp / f"{kind}.ready"
            command = [sys.executable, "-m", "tests.e2e.fakeproc", kind, "--port", "0", "--ready-file"]
            self._process(kind, [*command, str(ready_files[kind])], {**os.environ, "PYTHONUNBUFFERED": "1"})
        for kind, ready in ready_files.items():
            self._wait(lambda ready=ready: ready.exists(), f"the {kind} fake", self.processes[kind])
            self.fakes[kind] = FakeClient(kind, json.loads(ready.read_text())["port"])
        env = self.app_env()
        self._process("web", self.gunicorn_command(), env)
        for name in WORKERS:
            self.start_worker(name, wait=False)
        self._process("beat", self.beat_command(), env)
        self.wait_web()
        for name in WORKERS:
            self.wait_worker(name)
        self._wait(lambda: "beat: Starting" in self.processes["beat"].log_text(), "beat", self.processes["beat"], 30)
        self.started_in = time.monotonic() - started
        return self

    # --- the run's Redis ------------------------------------------------------------------------------------------

    def redis_command(self):
        return [
            REDIS_SERVER,
            "--port",
            str(self.redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.tmp),
            "--daemonize",
            "no",
        ]

    def redis_client(self):
        import redis

        return redis.Redis.from_url(self.redis_url, socket_timeout=5)

    def _redis_up(self) -> bool:
        import redis

        client = self.redis_client()
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start_redis(self):
        """Start (or start again, on the same port) the run's redis-server: empty, since nothing is persisted."""
        previous = self.processes.get("redis")
        if previous is not None and previous.alive:
            raise RuntimeError("redis is still running")
        if not REDIS_SERVER:
            raise RuntimeError("redis-server is not installed")
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        process = self._process("redis", self.redis_command(), {**os.environ})
        self._wait(self._redis_up, "redis-server", process, 30)
        return process

    def kill_redis(self):
        """SIGKILL the run's Redis: every queued task, every unacked delivery and every cache entry is gone."""
        self.processes["redis"].kill()

    def restart_redis(self, down_seconds=0.0):
        self.kill_redis()
        time.sleep(down_seconds)
        return self.start_redis()

    def flush_redis(self):
        """FLUSHALL: what an operator's mistake, or a Redis that restarted empty, does to the queues and the cache."""
        client = self.redis_client()
        try:
            client.flushall()
        finally:
            client.close()

    def queued(self, *queues) -> int:
        """Tasks waiting in these broker queues (all of them by default)."""
        from medspa.celery import QUEUES

        client = self.redis_client()
        try:
            return sum(client.llen(q) for q in queues or QUEUES)
        finally:
            client.close()

    def gunicorn_command(self):
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "--config=medspa/gunicorn.conf.py",  # production's hooks (docker-compose.yml)
            "medspa.wsgi:application",
            f"--bind=127.0.0.1:{self.web_port}",
            "--workers=2",
            "--timeout=30",
            "--graceful-timeout=5",
            "--access-logfile=-",
            "--no-control-socket",  # gunicorn 27 would otherwise take ~/.gunicorn/gunicorn.ctl, shared by all
        ]

    def worker_command(self, name):
        queues, threads = WORKERS[name]
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "medspa",
            "worker",
            "-Q",
            queues,
            "-n",
            f"{name}@e2e",
            "--pool=threads",
            f"--concurrency={threads}",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "info",
        ]

    def beat_command(self):
        schedule = self.tmp / "celerybeat-schedule"
        return [sys.executable, "-m", "celery", "-A", "medspa", "beat", "-l", "info", f"--schedule={schedule}"]

    def start_worker(self, name, *, wait=True, **env_overrides):
        previous = self.processes.get(name)
        if previous is not None and previous.alive:
            raise RuntimeError(f"{name} is still running")
        offset = len(previous.log_text()) if previous else 0
        process = self._process(name, self.worker_command(name), self.app_env(**env_overrides))
        process.ready_offset = offset
        if wait:
            self.wait_worker(name)
        return process

    def wait_worker(self, name):
        process = self.processes[name]
        offset = getattr(process, "ready_offset", 0)
        self._wait(lambda: f"{name}@e2e ready." in process.log_text()[offset:], name, process, 60)

    def kill_worker(self, name):
        self.processes[name].kill()

    def revive(self) -> list[str]:
        """Start again whatever a scenario left stopped (Redis, a worker), e.g. one that failed half-way."""
        revived = []
        if not self.processes["redis"].alive:
            self.start_redis()
            revived.append("redis")
        for name in WORKERS:
            if not self.processes[name].alive:
                self.start_worker(name)
                revived.append(name)
        return revived

    @contextlib.contextmanager
    def supervised(self):
        """Restart a worker that exits, within a second, as compose's ``restart: unless-stopped`` does in
        production (a Celery worker may exit when its broker vanishes under it). Yields the names restarted."""
        import threading

        restarted, stop = [], threading.Event()

        def watch():
            while not stop.wait(0.5):
                for name in WORKERS:
                    if not self.processes[name].alive and self.processes["redis"].alive:
                        restarted.append(name)
                        self.start_worker(name, wait=False)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            yield restarted
        finally:
            stop.set()
            watcher.join(timeout=5)

    def restart_worker(self, name, **env_overrides):
        process = self.processes[name]
        process.stop()
        return self.start_worker(name, **env_overrides)

    def wait_web(self):
        def healthy():
            try:
                return httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        self._wait(healthy, "gunicorn", self.processes["web"], 60)

    def _wait(self, predicate, what, process, seconds=30):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if predicate():
                return
            if process is not None and not process.alive:
                raise RuntimeError(f"{what} exited with {process.popen.returncode}:\n{process.tail()}")
            time.sleep(0.1)
        tail = process.tail() if process is not None else ""
        raise RuntimeError(f"{what} was not ready within {seconds} s:\n{tail}")

    def stop(self):
        for name in ("beat", *WORKERS, "web", *FAKES, "redis"):
            process = self.processes.get(name)
            if process is not None:
                process.stop()
        for fake in self.fakes.values():
            fake.http.close()

    def logs(self, lines=30) -> str:
        return "\n\n".join(
            f"--- {name} ({'running' if p.alive else 'stopped'}) ---\n{p.tail(lines)}"
            for name, p in self.processes.items()
        )

    def log_offsets(self) -> dict:
        return {name: len(p.log_text()) for name, p in self.processes.items()}

    def scenario_logs(self) -> dict:
        """What each process logged since the scenario began."""
        offsets = self.scenario_log_offsets
        return {name: p.log_text()[offsets.get(name, 0) :] for name, p in self.processes.items()}

    def logs_between(self, start: dict, end: dict | None = None) -> dict:
        """What each process logged between two ``log_offsets()`` (``end`` None: until now)."""
        end = end or {}
        texts = {}
        for name, p in self.processes.items():
            text = p.log_text()
            texts[name] = text[start.get(name, 0) : end.get(name, len(text))]
        return texts

    def error_lines(self, texts: dict, allow=()) -> list[str]:
        """Tracebacks, ERROR and CRITICAL lines of the app's processes (not the fakes' or Redis's own)."""
        problems = []
        for name, text in texts.items():
            if name in FAKES or name == "redis":
                continue
            for line in text.splitlines():
                if ("Traceback" in line or " ERROR " in line or "CRITICAL" in line) and not any(
                    a in line for a in allow
                ):
                    problems.append(f"{name}: {line}")
        return problems

    def assert_no_errors(self, allow=(), texts=None):
        """No traceback and no ERROR line in the app's logs during the scenario (``allow``: expected substrings;
        ``texts``: only these log extracts, from ``logs_between``)."""
        problems = self.error_lines(self.scenario_logs() if texts is None else texts, allow)
        assert not problems, "errors in the app's logs:\n" + "\n".join(problems[:20])


def database_url(settings_dict) -> str:
    """A DATABASE_URL for the database pytest-django created (its NAME is the test database's)."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = quote(settings_dict.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{quote(settings_dict['NAME'], safe='')}"
