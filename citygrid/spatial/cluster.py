"""The embedded PostgreSQL + PostGIS cluster: a private server under ``data/`` on a Unix socket.

``initdb`` and ``postgres`` refuse to run as root, so when citygrid is invoked as root the server runs as
the unprivileged OS account ``citygrid-pg`` (created on first use). The cluster listens on a Unix socket in
``data/run/`` only; TCP on 127.0.0.1 is opened only when asked (``start(tcp=True)``), with a generated
password (``data/secrets/pg_password``, mode 0600) because loopback is shared by every local user.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from citygrid.config import PG_OS_USER, PG_SUPERUSER, Settings
from citygrid.errors import Unavailable

# Unix socket paths are limited to 107 bytes on Linux; keep room for "/.s.PGSQL.NNNNN".
_MAX_SOCKET_DIR_LEN = 90
_FALLBACK_ROOT = Path("/var/lib/citygrid")

_SERVER_SETTINGS = {
    "listen_addresses": "''",
    "max_connections": "120",
    "shared_buffers": "512MB",
    "work_mem": "32MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "2GB",
    "checkpoint_timeout": "15min",
    "logging_collector": "off",
    "log_min_messages": "warning",
    # One cluster serves cities in different zones: each session sets its deployment's (db.make_engine).
    "timezone": "'UTC'",
}


def find_pg_bin() -> Path:
    """Directory of the newest installed PostgreSQL server binaries (Debian layout first)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for bin_dir in reversed(candidates):
        if (bin_dir / "initdb").exists() and (bin_dir / "pg_ctl").exists():
            return bin_dir
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        bin_dir = Path(out.stdout.strip())
        if (bin_dir / "initdb").exists():
            return bin_dir
    raise Unavailable(
        "PostgreSQL server binaries not found. Install them with: "
        "sudo apt-get install -y postgresql postgresql-15-postgis-3 (or run `make setup` as root)"
    )


@dataclass(frozen=True)
class ClusterPaths:
    """Where the cluster keeps its files: the server's data directory, its socket directory and its log, all
    below ``base``, which is ``data/`` unless that cannot serve (see ``for_data_dir``)."""

    base: Path
    pg_dir: Path
    run_dir: Path
    log_file: Path

    @classmethod
    def under(cls, base: Path) -> ClusterPaths:
        """The layout below ``base``: ``pg/``, ``run/`` (the Unix socket) and ``log/postgresql.log``."""
        return cls(base, base / "pg", base / "run", base / "log" / "postgresql.log")

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> ClusterPaths:
        """Use ``data_dir`` itself when the server account can reach it and the socket path fits.

        Otherwise (a checkout under ``/root``, or a very long path) use ``/var/lib/citygrid/<hash>``; the
        choice depends only on ``data_dir``, so every command finds the same cluster.
        """
        data_dir = data_dir.resolve()
        here = cls.under(data_dir)
        fits = len(str(here.run_dir)) <= _MAX_SOCKET_DIR_LEN
        if fits and (os.geteuid() != 0 or _world_traversable(data_dir)):
            return here
        digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:12]
        return cls.under(_FALLBACK_ROOT / digest)


def _world_traversable(path: Path) -> bool:
    """True when every ancestor of ``path`` lets other users through (mode o+x)."""
    return all(not parent.exists() or parent.stat().st_mode & 0o001 for parent in path.parents)


def _server_account() -> str | None:
    """OS account for the server: ``citygrid-pg`` when we are root (created if missing), else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_OS_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_OS_USER],
            check=True,
        )
    return PG_OS_USER


def _as_server(cmd: list[str], account: str | None) -> list[str]:
    return ["runuser", "-u", account, "--", *cmd] if account else cmd


def _chown(path: Path, account: str | None) -> None:
    if account:
        entry = pwd.getpwnam(account)
        os.chown(path, entry.pw_uid, entry.pw_gid)


class EmbeddedCluster:
    """Manage the private cluster: ``init``, ``start``, ``stop``, ``status``.

    Parameters
    ----------
    settings : where ``data/`` is and which port names the socket.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.paths = ClusterPaths.for_data_dir(settings.data_dir)
        self.port = settings.pg_port

    # ----------------------------------------------------------------------------------------- queries
    @property
    def password_file(self) -> Path:
        return self.settings.data_dir / "secrets" / "pg_password"

    def is_initialised(self) -> bool:
        return (self.paths.pg_dir / "PG_VERSION").exists()

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(find_pg_bin() / "pg_ctl"), "-D", str(self.paths.pg_dir), *args]
        return subprocess.run(_as_server(cmd, _server_account()), capture_output=True, text=True, check=check)

    def is_running(self) -> bool:
        if not self.is_initialised():
            return False
        return self._pg_ctl("status", check=False).returncode == 0

    def tcp_enabled(self) -> bool:
        """Whether the running server was started listening on 127.0.0.1."""
        opts = self.paths.pg_dir / "postmaster.opts"
        return self.is_running() and opts.exists() and "listen_addresses=127.0.0.1" in opts.read_text()

    def status(self) -> dict[str, object]:
        """Plain description of the cluster (for ``citygrid db status``)."""
        running = self.is_running()
        version = (self.paths.pg_dir / "PG_VERSION").read_text().strip() if self.is_initialised() else None
        return {
            "initialised": self.is_initialised(),
            "running": running,
            "data_directory": str(self.paths.pg_dir),
            "socket_directory": str(self.paths.run_dir),
            "port": self.port,
            "tcp": self.tcp_enabled() if running else False,
            "postgresql_major": version,
            "server_account": _server_account() or pwd.getpwuid(os.geteuid()).pw_name,
        }

    def password(self) -> str:
        """The superuser password used for TCP connections (created by ``init``)."""
        if not self.password_file.exists():
            raise Unavailable(f"no password file at {self.password_file}; run `citygrid db init` first")
        return self.password_file.read_text().strip()

    def socket_url(self, database: str) -> str:
        """SQLAlchemy URL for ``database`` over the Unix socket."""
        return f"postgresql+psycopg://{PG_SUPERUSER}@/{database}?host={self.paths.run_dir}&port={self.port}"

    def tcp_url(self, database: str) -> str:
        """``postgresql://`` URL for ``database`` over TCP on 127.0.0.1 (needs ``start(tcp=True)``)."""
        return f"postgresql://{PG_SUPERUSER}:{self.password()}@127.0.0.1:{self.port}/{database}"

    # ----------------------------------------------------------------------------------------- actions
    def init(self) -> bool:
        """Create the cluster if it does not exist. Returns True when it was created now."""
        if self.is_initialised():
            return False
        bin_dir = find_pg_bin()
        account = _server_account()
        for directory in (self.paths.base, self.paths.pg_dir, self.paths.run_dir, self.paths.log_file.parent):
            directory.mkdir(parents=True, exist_ok=True)
        for directory in (self.paths.pg_dir, self.paths.run_dir, self.paths.log_file.parent):
            _chown(directory, account)
        self.paths.pg_dir.chmod(0o700)
        secret_dir = self.password_file.parent
        secret_dir.mkdir(parents=True, exist_ok=True)
        secret_dir.chmod(0o700)
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_urlsafe(24) + "\n")
            self.password_file.chmod(0o600)
        # initdb reads the password from a file the server account can read; hand it a private copy.
        pwfile = self.paths.run_dir / ".initdb-pw"
        pwfile.write_text(self.password())
        pwfile.chmod(0o600)
        _chown(pwfile, account)
        cmd = [
            str(bin_dir / "initdb"),
            "-D", str(self.paths.pg_dir),
            "-U", PG_SUPERUSER,
            "--pwfile", str(pwfile),
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E", "UTF8",
            "--locale=C.UTF-8",
        ]
        try:
            done = subprocess.run(_as_server(cmd, account), capture_output=True, text=True, check=False)
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            raise Unavailable(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
        conf = self.paths.pg_dir / "postgresql.conf"
        settings = {
            **_SERVER_SETTINGS,
            "port": str(self.port),
            "unix_socket_directories": f"'{self.paths.run_dir}'",
        }
        with conf.open("a") as fh:
            fh.write("\n# --- citygrid embedded cluster ---\n")
            for key, value in settings.items():
                fh.write(f"{key} = {value}\n")
        return True

    def start(self, tcp: bool = False) -> bool:
        """Start the server (initialising it first if needed). Returns True when it was started now.

        ``tcp=True`` also listens on 127.0.0.1 at the cluster port; a server already running without TCP
        is restarted to add it.
        """
        self.init()
        if self.is_running():
            if not tcp or self.tcp_enabled():
                return False
            self.stop()
        # pg_ctl hands -o to a shell, hence the quoted empty string.
        options = "-c listen_addresses=127.0.0.1" if tcp else "-c listen_addresses=''"
        self.paths.log_file.parent.mkdir(parents=True, exist_ok=True)
        done = self._pg_ctl("-l", str(self.paths.log_file), "-w", "-t", "60", "-o", options, "start", check=False)
        if done.returncode != 0:
            tail = ""
            if self.paths.log_file.exists():
                tail = "\n".join(self.paths.log_file.read_text(errors="replace").splitlines()[-10:])
            raise Unavailable(f"PostgreSQL did not start: {done.stderr.strip()}\n{tail}".strip())
        return True

    def stop(self) -> bool:
        """Stop the server (fast shutdown). Returns True when it was running."""
        if not self.is_running():
            return False
        self._pg_ctl("-m", "fast", "-w", "stop")
        return True
