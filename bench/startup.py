"""``engage run`` start-up: from spawning the process to "listening" and to the first healthy
/healthz answer, against baselines measured in the same run; and /healthz while a large points
catch-up runs.

    python -m bench.startup [--db sqlite|postgres|both] [--runs 5] [--lots 3000]

The fakes (``python -m tests.fakes serve``) stand in for Telegram, Twilio, the weather service
and the core system; ``engage run`` is started with the shipped defaults plus the TOML the
fakes print, a database URL, a port and an uploads directory. Each run takes a fresh
database (a new SQLite file, or a new PostgreSQL database): the first start applies every
migration ("first start"), then the process is stopped with SIGTERM and started again on the
same database ("restart", the usual case). Per start: seconds from spawn to the "engage
listening" log line, to the first 200 from /healthz (polled every 20 ms; since Telegram and
delivery start after the app answers, that answer may say ``"status": "starting"``), to the
log line saying Telegram and delivery started beside the running app or, for a checkout that
starts them before listening, the first /healthz whose status is ``ok`` ("ready"; /healthz is
polled only every 100 ms after the first 200, so that the polling does not take the CPU and
the GIL from that start-up), and the child's CPU seconds when ready (user + system, from
/proc: what a quiet machine would take in wall time, nearly). Medians of ``--runs``.

Baselines, interleaved with the runs: ``python -c "import aiohttp, aiogram"`` (the import
floor of any aiogram bot) and a bare aiohttp app with a /healthz route (spawn to first 200).

Catch-up: a migrated database with ``--lots`` customers each holding a point lot that expired
long ago, and the points job recorded as done yesterday, so that start-up catch-up expires
every lot (one transaction each). /healthz is polled from the first answer until the catch-up
logs its end; printed: the catch-up's length, how many /healthz answers came during it (all
must be 200) and their median and largest latency.

Code under test is the checkout this file is in (children get it first on PYTHONPATH), so a
copy of this file in another worktree measures that worktree (before/after pairs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FAKES_PORT = 19380
ENGAGE_PORT = 19390
BARE_PORT = 19391
LISTENING = re.compile(r"engage listening on")
LATE_STARTED = re.compile(r"started beside the running app")
CATCH_UP_DONE = re.compile(r"points job for ")

BARE_APP = """
import time
from aiohttp import web
async def healthz(request):
    return web.json_response({"status": "ok"})
app = web.Application()
app.router.add_get("/healthz", healthz)
web.run_app(app, host="127.0.0.1", port=%d, print=None, access_log=None)
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _get(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, urllib.error.URLError):
        return None


def _status(url: str) -> str | None:
    """The ``status`` field of a 200 answer, else None."""
    try:
        with urllib.request.urlopen(url, timeout=5.0) as resp:
            return str(json.load(resp).get("status"))
    except (OSError, ValueError, urllib.error.URLError):
        return None


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class Start:
    listening: float = float("nan")
    healthy: float = float("nan")
    ready: float = float("nan")
    cpu: float = float("nan")
    lines: list[tuple[float, str]] = field(default_factory=list)


class Child:
    """A spawned process whose stderr lines are kept with their arrival times."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(argv, cwd=cwd, env=_env(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append((time.perf_counter() - self.t0, line.rstrip()))

    def first(self, pattern: re.Pattern[str]) -> float | None:
        for at, line in list(self.lines):
            if pattern.search(line):
                return at
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)


def _until_healthy(child: Child, url: str, limit: float = 300.0) -> float:
    while True:
        status = _get(url, timeout=5.0)
        if status == 200:
            return time.perf_counter() - child.t0
        if child.proc.poll() is not None:
            tail = "\n".join(line for _, line in child.lines[-20:])
            raise RuntimeError(f"engage run exited with {child.proc.returncode}:\n{tail}")
        if time.perf_counter() - child.t0 > limit:
            raise RuntimeError("engage run not healthy in time")
        time.sleep(0.02)


def _until_ready(child: Child, url: str, limit: float = 300.0) -> float:
    while (status := _status(url)) != "ok":
        if child.proc.poll() is not None or status == "unavailable":
            tail = "\n".join(line for _, line in child.lines[-20:])
            raise RuntimeError(f"engage run did not get ready ({status}):\n{tail}")
        if time.perf_counter() - child.t0 > limit:
            raise RuntimeError("engage run not ready in time")
        time.sleep(0.1)
    polled = time.perf_counter() - child.t0
    logged = child.first(LATE_STARTED)
    return min(polled, logged) if logged is not None else polled


def start_engage(workdir: Path) -> tuple[Child, Start]:
    child = Child([sys.executable, "-m", "bot.cli", "--config", "config.toml", "run"], workdir)
    url = f"http://127.0.0.1:{ENGAGE_PORT}/healthz"
    healthy = _until_healthy(child, url)
    ready = _until_ready(child, url)
    result = Start(healthy=healthy, ready=ready, cpu=_cpu_seconds(child.proc.pid))
    deadline = time.perf_counter() + 10
    while (listening := child.first(LISTENING)) is None and time.perf_counter() < deadline:
        time.sleep(0.01)
    result.listening = listening if listening is not None else float("nan")
    return child, result


def bare_import() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import aiohttp, aiogram"], check=True, env=_env())
    return time.perf_counter() - t0


def bare_app() -> float:
    child = Child([sys.executable, "-c", BARE_APP % BARE_PORT], ROOT)
    try:
        return _until_healthy(child, f"http://127.0.0.1:{BARE_PORT}/healthz")
    finally:
        child.stop()


def write_config(workdir: Path, fakes_toml: str, url: str) -> None:
    (workdir / "config.toml").write_text(
        fakes_toml + f'\n[database]\nurl = "{url}"\n[web]\nport = {ENGAGE_PORT}\n'
        f'[uploads]\ndirectory = "{workdir / "uploads"}"\n', encoding="utf-8")


@asynccontextmanager
async def fresh_database(backend: str) -> AsyncIterator[str]:
    from bench.common import temp_postgres_database, temp_sqlite_database

    maker = temp_postgres_database() if backend == "postgres" else temp_sqlite_database()
    async with maker as url:
        yield url


async def seed_catch_up(url: str, lots: int) -> None:
    """``lots`` customers with one long-expired lot each; the points job last ran yesterday."""
    from tortoise import Tortoise
    from tortoise.backends.base.executor import EXECUTOR_CACHE

    from loyalty import ledger
    from loyalty.config import LoyaltySettings
    from storage import db as storage_db
    from storage.loyalty_models import EntryKind
    from storage.models import Customer
    from storage.scheduler_models import SchedulerRun

    EXECUTOR_CACHE.clear()  # SQL rendered for another backend in this process
    await storage_db.upgrade(url)
    try:
        customers = [Customer(name=f"积分{n}", phone=f"+86137{n:08d}", referral_code=f"SU{n}")
                     for n in range(lots)]
        await Customer.bulk_create(customers, batch_size=1000)
        ids = await Customer.all().order_by("id").values_list("id", flat=True)
        settings = LoyaltySettings()
        earned = datetime(2023, 1, 10, tzinfo=UTC)
        for start in range(0, len(ids), 200):
            await asyncio.gather(*(ledger.credit(int(cid), 100, kind=EntryKind.ADJUSTMENT,
                                                 key=f"bench-startup:{cid}", now=earned,
                                                 settings=settings, reason="bench")
                                   for cid in ids[start:start + 200]))
        yesterday = (datetime.now(UTC) + timedelta(hours=8)).date() - timedelta(days=1)
        await SchedulerRun.create(job="points", day=yesterday, finished_at=datetime.now(UTC),
                                  counts={})
    finally:
        await Tortoise.close_connections()


def health_during_catch_up(child: Child, since: float) -> dict[str, Any]:
    """Poll /healthz until the points catch-up logs its end; latencies of the answers."""
    url = f"http://127.0.0.1:{ENGAGE_PORT}/healthz"
    latencies: list[float] = []
    statuses: list[int | None] = []
    deadline = time.perf_counter() + 600
    while child.first(CATCH_UP_DONE) is None and time.perf_counter() < deadline:
        t = time.perf_counter()
        statuses.append(_get(url, timeout=30.0))
        latencies.append(time.perf_counter() - t)
        time.sleep(0.05)
    done = child.first(CATCH_UP_DONE)
    return {
        "catch_up_s": (done - since) if done is not None else float("nan"),
        "answers": len(statuses),
        "non_200": sum(1 for s in statuses if s != 200),
        "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "max_ms": 1000 * max(latencies) if latencies else float("nan"),
        "expired": next((line for _, line in child.lines if "expired" in line
                         and "point lots" in line), "(no lot expired: before 01:00 "
                         "Asia/Shanghai the points job is not due)"),
    }


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def start_fakes() -> tuple[subprocess.Popen[str], str]:
    """The fakes in their own process, and the TOML they print for ``engage``."""
    fakes = subprocess.Popen([sys.executable, "-m", "tests.fakes", "serve", "--port",
                              str(FAKES_PORT)], cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    assert fakes.stdout is not None
    toml_lines = []
    for line in fakes.stdout:
        if line.startswith("# control API"):
            break
        toml_lines.append(line)
    return fakes, "".join(toml_lines)


async def run(backends: list[str], runs: int, lots: int) -> None:
    from bench.common import postgres_unreachable

    fakes, fakes_toml = start_fakes()
    print(f"code under test: {ROOT}; load average {_load()} ({os.cpu_count()} CPUs)")
    try:
        imports: list[float] = []
        bare: list[float] = []
        for backend in backends:
            if backend == "postgres" and (why := await postgres_unreachable()):
                print(f"postgres: skipped ({why})")
                continue
            first: list[Start] = []
            again: list[Start] = []
            for _ in range(runs):
                imports.append(bare_import())
                bare.append(bare_app())
                workdir = Path(tempfile.mkdtemp(prefix="engage-startup-"))
                try:
                    async with fresh_database(backend) as url:
                        write_config(workdir, fakes_toml, url)
                        for into in (first, again):
                            child, result = start_engage(workdir)
                            child.stop()
                            into.append(result)
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
            floor = _median(imports)
            bare_s = _median(bare)
            print(f"\n{backend}, {runs} runs, medians (load average now {_load()}):")
            print(f"  baseline: import aiohttp, aiogram {floor:.2f} s; bare aiohttp app "
                  f"spawn to first /healthz 200: {bare_s:.2f} s")
            for name, starts in (("first start (migrations)", first),
                                 ("restart (migrated database)", again)):
                listening = _median([s.listening for s in starts])
                healthy = _median([s.healthy for s in starts])
                ready = _median([s.ready for s in starts])
                cpu = _median([s.cpu for s in starts])
                print(f"  {name:<28} listening {listening:6.2f} s, healthy {healthy:6.2f} s "
                      f"(× {healthy / floor:.2f} the aiogram import, × {healthy / bare_s:.1f} "
                      f"the bare app), ready {ready:6.2f} s (× {ready / floor:.2f}), "
                      f"CPU when ready {cpu:.2f} s; each healthy/ready: "
                      + ", ".join(f"{s.healthy:.2f}/{s.ready:.2f}" for s in starts))

            if lots:
                workdir = Path(tempfile.mkdtemp(prefix="engage-catchup-"))
                try:
                    async with fresh_database(backend) as url:
                        await seed_catch_up(url, lots)
                        write_config(workdir, fakes_toml, url)
                        child, result = start_engage(workdir)
                        try:
                            report = health_during_catch_up(child, result.healthy)
                        finally:
                            child.stop()
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
                print(f"  catch-up of {lots} expired lots: first healthy {result.healthy:.2f} s "
                      f"after spawn; catch-up ended {report['catch_up_s']:.2f} s after that; "
                      f"{report['answers']} /healthz answers during it, {report['non_200']} not "
                      f"200, p50 {report['p50_ms']:.0f} ms, max {report['max_ms']:.0f} ms")
                print(f"    {report['expired']}")
    finally:
        fakes.send_signal(signal.SIGTERM)
        fakes.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lots", type=int, default=3000,
                        help="expired point lots for the catch-up run (0: skip it)")
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    asyncio.run(run(backends, args.runs, args.lots))
    return 0


if __name__ == "__main__":
    sys.exit(main())
