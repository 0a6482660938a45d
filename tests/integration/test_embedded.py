"""The embedded server's lifecycle: nothing outlives close(), an exception, or SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from copilotz_orm import DbConfig, EmbeddingConfig, create_database
from copilotz_orm.embedded import EmbeddedServer
from copilotz_orm.errors import EmbeddedServerError

HOLD = Path(__file__).with_name("hold_server.py")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def open_dir() -> Path:
    """A temporary directory the server's system user can enter when we run as root."""
    path = Path(tempfile.mkdtemp(prefix="copilotz-test-"))
    path.chmod(0o755)
    return path


def hold(mode: str, path: Path | None = None) -> tuple[subprocess.Popen, dict]:
    args = [sys.executable, str(HOLD), mode] + ([str(path)] if path else [])
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line, "helper did not start a server"
    return proc, json.loads(line)


def test_memory_close_stops_server_and_removes_data():
    server = EmbeddedServer.start("memory")
    pid, datadir = server.pid, server.datadir
    assert pid and alive(pid) and datadir.exists()
    server.close()
    assert wait_gone(pid, 5)
    assert not datadir.exists()
    server.close()  # idempotent


def test_exception_inside_context_stops_server():
    with pytest.raises(RuntimeError):
        with EmbeddedServer.start("memory") as server:
            pid, datadir = server.pid, server.datadir
            raise RuntimeError("boom")
    assert wait_gone(pid, 5) and not datadir.exists()


async def test_database_context_manager_closes_on_exception():
    with pytest.raises(ZeroDivisionError):
        async with await create_database(DbConfig(url=":memory:", embedding=EmbeddingConfig(model="hashing"))) as db:
            pid = db.server.pid
            1 / 0
    assert wait_gone(pid, 5)


@pytest.mark.parametrize("mode", ["memory", "file"])
def test_sigkill_of_host_leaves_no_postgres(mode):
    path = open_dir() / "db" if mode == "file" else None
    proc, info = hold(mode, path)
    assert alive(info["pid"])
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert wait_gone(info["pid"]), "postgres outlived a SIGKILLed host"
    if mode == "memory":
        deadline = time.monotonic() + 5
        while Path(info["datadir"]).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(info["datadir"]).exists()
    else:
        assert (path / "PG_VERSION").exists()  # persistent data stays


def test_file_mode_is_shared_by_two_processes_and_stops_after_the_last():
    path = open_dir() / "db"
    first, a = hold("file", path)
    second, b = hold("file", path)
    assert a["pid"] == b["pid"], "two processes on one path must share one server"
    first.stdin.write("close\n")
    first.stdin.flush()
    assert first.stdout.readline().strip() == "closed"
    first.wait(10)
    assert alive(a["pid"]), "the server stopped while another process still used it"
    second.stdin.write("close\n")
    second.stdin.flush()
    assert second.stdout.readline().strip() == "closed"
    second.wait(10)
    assert wait_gone(a["pid"])


async def test_file_mode_keeps_data_between_runs():
    path = open_dir() / "store"
    config = DbConfig(url=f"file:{path}", embedding=EmbeddingConfig(model="hashing"))
    async with await create_database(config) as db:
        node = await db.ops.create_node(namespace="n", type="entity", name="kept")
        pid = db.server.pid
    assert wait_gone(pid, 5)
    async with await create_database(config) as db:
        again = await db.ops.get_node_by_id(node.id)
    assert again is not None and again.name == "kept"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs postgres as a separate system user")
def test_root_never_opens_up_private_directories():
    private = Path(tempfile.mkdtemp(prefix="copilotz-private-"))  # mode 0700, like /root
    before = stat.S_IMODE(private.stat().st_mode)
    with pytest.raises(EmbeddedServerError, match="cannot enter"):
        EmbeddedServer.start("file", private / "db")
    assert stat.S_IMODE(private.stat().st_mode) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="root only")
def test_root_home_permissions_unchanged():
    home = Path("/root")
    before = home.stat().st_mode
    server = EmbeddedServer.start("memory")
    server.close()
    assert home.stat().st_mode == before


def test_forked_child_does_not_keep_a_killed_hosts_server_alive():
    code = (
        "import os, sys, time, json\n"
        "from copilotz_orm.embedded import EmbeddedServer\n"
        "s = EmbeddedServer.start('memory')\n"
        "if os.fork() == 0:\n"
        "    time.sleep(60); os._exit(0)\n"
        "print(json.dumps({'pid': s.pid}), flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    info = json.loads(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    try:
        assert wait_gone(info["pid"], 10), "a forked child kept the server alive"
    finally:
        subprocess.run(["pkill", "-f", "time.sleep\\(60\\); os._exit"], check=False)


def test_stale_ready_pid_file_is_not_taken_for_a_started_server():
    path = open_dir() / "db"
    proc, info = hold("file", path)
    # crash everything at once: host, keeper and postmaster (OOM killer, container kill)
    keeper = int(subprocess.run(["pgrep", "-f", f"_watchdog.py --mode file --datadir {path}"],
                                capture_output=True, text=True).stdout.split()[0])
    for pid in (proc.pid, keeper, info["pid"]):
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    assert wait_gone(info["pid"])
    assert (path / "postmaster.pid").exists()  # stale, still saying "ready"
    again, info2 = hold("file", path)
    try:
        import asyncpg

        async def ping():
            conn = await asyncpg.connect(info2["url"].replace("postgresql+asyncpg", "postgresql"))
            try:
                return await conn.fetchval("select 1")
            finally:
                await conn.close()

        assert asyncio.run(ping()) == 1
    finally:
        again.stdin.write("close\n")
        again.stdin.flush()
        again.wait(10)
    assert wait_gone(info2["pid"])
