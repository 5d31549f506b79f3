"""A real PostgreSQL server for the tests: found or installed, run unprivileged, one per session.

:func:`start_server` finds ``initdb``/``pg_ctl`` (``PATH``, then Debian's
``/usr/lib/postgresql/*/bin``), installs Debian's ``postgresql`` package with apt-get when they
are missing and this runs as root, and starts a throwaway cluster on a free loopback port, with
fsync off. ``initdb`` refuses to run as root, so as root the cluster belongs to the ``postgres``
user (or ``nobody``). :meth:`PgServer.new_database` gives each test module or test its own
database (:meth:`PgServer.cloud_database`: one that already holds the cloud's schema, copied from
a template made once, which saves the schema's creation in every test). :data:`UNAVAILABLE` says why there is no server when there cannot be one.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from kkt_emulator.cloud.storage import Storage

__all__ = ["PgServer", "PgUnavailableError", "start_server"]

_SUPERUSER = "kkt"
_counter = itertools.count(1)


#: apt-get and dpkg refuse to run beside another apt-get: test sessions running side by side
#: (pytest-xdist workers) take turns through this lock, and the later one finds the package there.
_APT_LOCK = Path(tempfile.gettempdir()) / "kkt-tests-apt.lock"


@contextlib.contextmanager
def _apt_turn() -> Iterator[None]:
    with _APT_LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class PgUnavailableError(Exception):
    """No PostgreSQL server can be had on this machine (the reason is the message)."""


def _find_bin_dir() -> Path | None:
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    return None


def _install() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PgUnavailableError(
            "PostgreSQL is not installed (no initdb) and cannot be installed here"
            " (needs root and apt-get: apt-get install postgresql)"
        )
    _run(["apt-get", "update", "-qq"])  # an old list may still do; the install says
    done = _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"])
    # The package's own cluster may fail to start in a container; the binaries are what we need.
    if done.returncode != 0 and _find_bin_dir() is None:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
        raise PgUnavailableError(f"apt-get install postgresql failed: {' '.join(tail)}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _server_user() -> pwd.struct_passwd | None:
    """The unprivileged user to run the server as when this runs as root (else ``None``)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PgUnavailableError("running as root and no unprivileged user (postgres, nobody) exists")


@dataclass
class PgServer:
    """A running throwaway cluster; :meth:`stop` removes it."""

    bin_dir: Path
    root: Path
    port: int
    user: pwd.struct_passwd | None
    databases: list[str] = field(default_factory=list)
    _template: str | None = None

    @property
    def admin_url(self) -> str:
        return f"postgresql://{_SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://{_SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str = "t", *, template: str = "template1") -> str:
        """A fresh database (a copy of ``template``); returns its URL."""
        name = f"{prefix}_{os.getpid()}_{next(_counter)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            version = conn.info.server_version
            # FILE_COPY (PostgreSQL 15+) copies a small template faster than logging it page by page.
            strategy = " STRATEGY FILE_COPY" if version >= 150000 else ""
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"{strategy}'.encode())
        self.databases.append(name)
        return self.url(name)

    def cloud_database(self) -> str:
        """A fresh database that already holds the cloud's schema (made once per session)."""
        if self._template is None:
            url = self.new_database("cloud_template")
            Storage(url).close()
            self._template = url.rsplit("/", 1)[1]
        return self.new_database("cloud", template=self._template)

    def stop(self) -> None:
        data = str(self.root / "data")
        _run([str(self.bin_dir / "pg_ctl"), "-D", data, "-m", "immediate", "stop"], self.user)
        shutil.rmtree(self.root, ignore_errors=True)


def _run(
    args: list[str], user: pwd.struct_passwd | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL or apt tool (fixed programs, arguments of our own), as ``user`` if given."""
    env = {
        **os.environ,
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
    }
    return subprocess.run(  # noqa: S603 - the programs and arguments are this module's own
        args,
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env=env,
        user=None if user is None else user.pw_uid,
        group=None if user is None else user.pw_gid,
    )


def start_server() -> PgServer:
    """Find or install PostgreSQL and start a cluster; raises PgUnavailableError with why not."""
    bin_dir = _find_bin_dir()
    if bin_dir is None:
        with _apt_turn():
            if _find_bin_dir() is None:  # not installed by the session that had its turn first
                _install()
        bin_dir = _find_bin_dir()
        if bin_dir is None:
            raise PgUnavailableError("apt-get installed postgresql but no initdb was found")
    user = _server_user()
    root = Path(tempfile.mkdtemp(prefix="kkt-pg-"))
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    data, sockets, log = root / "data", root / "sock", root / "server.log"
    initdb = _run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", _SUPERUSER, "-A", "trust", "-E", "UTF8"],
        user,
        root,
    )
    if initdb.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise PgUnavailableError(f"initdb failed: {initdb.stderr.strip()[-300:]}")
    sockets.mkdir()
    if user is not None:
        os.chown(sockets, user.pw_uid, user.pw_gid)
    port = _free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off"
        " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    started = _run(
        [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"],
        user,
        root,
    )
    if started.returncode != 0:
        detail = log.read_text(errors="replace")[-300:] if log.exists() else started.stderr
        shutil.rmtree(root, ignore_errors=True)
        raise PgUnavailableError(f"pg_ctl start failed: {detail.strip()}")
    return PgServer(bin_dir, root, port, user)
