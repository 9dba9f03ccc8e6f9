"""Start-up mistakes are reported before the slow part: ``engage run`` checks the database and
its port before importing the bot stack (aiogram's models alone take seconds to build on a
loaded machine), and ``engage import`` checks the file before connecting — one line on
stderr, exit 2, nothing else printed or written."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = ("import sys; from bot.cli import main; code = main(sys.argv[1:]); "
         "print('bot stack imported' if 'aiogram' in sys.modules else 'bot stack not imported');"
         " sys.exit(code)")


def _engage(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGE_")}
    clean.update(env)
    return subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, env=clean,
                          capture_output=True, text=True, timeout=120, check=False)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_database_is_reported_before_the_bot_stack_is_imported(
    tmp_path: Path,
) -> None:
    url = f"postgres://engage@127.0.0.1:{_closed_port()}/engage"
    done = _engage(["run"], tmp_path, ENGAGE_DATABASE__URL=url)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("engage: cannot reach database postgres://engage@127.0.0.1:")
    assert done.stdout.strip() == "bot stack not imported"


def test_a_port_in_use_is_reported_before_the_bot_stack_is_imported(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _engage(["run"], tmp_path, ENGAGE_DATABASE__URL=f"sqlite://{tmp_path}/e.db",
                       ENGAGE_WEB__PORT=str(port))
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith(f"engage: cannot listen on 127.0.0.1:{port} (web.host, web.port): ")
    assert done.stdout.strip() == "bot stack not imported"


def test_a_configuration_mistake_is_one_line_naming_the_key(tmp_path: Path) -> None:
    done = _engage(["run"], tmp_path, ENGAGE_DELIVERY__SHUTDOWN_SECONDS="0")
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("engage: invalid configuration: delivery.shutdown_seconds: ")


@pytest.mark.parametrize("content, problem", [
    ("phone,nam\n13800138000,x\n", "missing column(s) name"),
    ("", "empty file (expected a header row)"),
    (b"phone,name\n\xff\xfe,x\n",
     "not UTF-8 text (bad byte on line 2); save the file as UTF-8 CSV"),
])
def test_import_checks_the_file_before_connecting(
    tmp_path: Path, content: str | bytes, problem: str
) -> None:
    path = tmp_path / "customers.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    database = tmp_path / "never.sqlite3"
    done = _engage(["import", "customers", str(path)], tmp_path,
                   ENGAGE_DATABASE__URL=f"sqlite://{database}")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"engage: {path}: {problem}"]  # one line, no INFO
    assert not database.exists()  # nothing connected, migrated or written


def test_import_of_policies_naming_no_customer_is_refused_before_connecting(
    tmp_path: Path,
) -> None:
    path = tmp_path / "policies.csv"
    path.write_text("number,product,plate,start_date,end_date,premium\n"
                    "P1,auto,沪A12345,2026-01-01,2026-12-31,3000\n", encoding="utf-8")
    database = tmp_path / "never.sqlite3"
    done = _engage(["import", "policies", str(path)], tmp_path,
                   ENGAGE_DATABASE__URL=f"sqlite://{database}")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"engage: {path}: missing column(s) phone (or customer_no): whose policy is it?"]
    assert not database.exists()
