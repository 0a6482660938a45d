"""Keeper of one embedded postgres process. Run as a script (imports only the standard library).

It is the parent of the postmaster, which gets SIGINT (fast shutdown) through PR_SET_PDEATHSIG if
this process dies. This process in turn watches its host through a pipe on stdin: end of file
means the host closed the database or died, even by SIGKILL. Then:

* mode ``memory``: stop postgres and delete the data directory;
* mode ``file``: wait until no host holds a shared lock on the clients lock file (other
  processes may still use the server), then stop postgres.

Protocol on stdout: one line, ``ready`` or ``error <message>``.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1
READY_TIMEOUT_S = 60.0


class _Stop(Exception):
    pass


def _raise_stop(signum, frame):  # noqa: ARG001
    raise _Stop


def _child_setup(uid: int | None, gid: int | None, parent: int) -> None:
    if uid is not None and gid is not None:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    # After setuid: a credential change clears the parent-death signal.
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGINT)
    if os.getppid() != parent:  # the watchdog died before prctl took effect
        os._exit(1)


def _postmaster_status(datadir: Path, pid: int) -> str | None:
    """The status our postmaster wrote; None while the file is missing or still a crashed
    server's (whose stale 'ready' must not be mistaken for ours)."""
    try:
        lines = (datadir / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, PermissionError):
        return None
    if len(lines) < 8 or lines[0].strip() != str(pid):
        return None
    return lines[7].strip()


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)  # fast shutdown: disconnect clients, checkpoint, exit
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGQUIT)  # immediate shutdown
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["memory", "file"], required=True)
    parser.add_argument("--datadir", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--clients-lock", type=Path)
    parser.add_argument("--socket-dir", type=Path)
    parser.add_argument("--uid", type=int)
    parser.add_argument("--gid", type=int)
    parser.add_argument("postgres", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = [c for c in args.postgres if c != "--"]

    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGHUP, _raise_stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the host decides; SIGTERM still stops us

    me = os.getpid()
    with open(args.log, "ab") as log:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            preexec_fn=lambda: _child_setup(args.uid, args.gid, me),
            close_fds=True,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while _postmaster_status(args.datadir, proc.pid) != "ready":
            if proc.poll() is not None:
                tail = args.log.read_text(errors="replace").strip().splitlines()[-5:]
                print("error postgres exited: " + " | ".join(tail), flush=True)
                return 1
            if time.monotonic() > deadline:
                print(f"error postgres not ready after {READY_TIMEOUT_S:.0f}s", flush=True)
                _stop(proc)
                return 1
            time.sleep(0.005)
        print("ready", flush=True)

        try:
            while sys.stdin.buffer.read(4096):
                pass  # the host never writes; we only wait for end of file
        except _Stop:
            pass
        if args.mode == "file" and args.clients_lock is not None:
            # Other processes may share this server; stop when the last one lets go.
            with open(args.clients_lock, "a+b") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    _stop(proc)
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
            return 0
        _stop(proc)
        return 0
    except _Stop:
        _stop(proc)
        return 0
    finally:
        if proc.poll() is None:
            _stop(proc)
        if args.mode == "memory":
            shutil.rmtree(args.datadir, ignore_errors=True)
        elif args.socket_dir is not None:
            try:
                args.socket_dir.rmdir()  # only when empty: another server may have started in it
            except OSError:
                pass


if __name__ == "__main__":
    sys.exit(main())
