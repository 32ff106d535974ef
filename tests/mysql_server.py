"""A MySQL/MariaDB server for the tests: MYSQL_TEST_URL, else 127.0.0.1:3306, else a throwaway.

The throwaway is initialised from the installed binaries (mariadb-install-db + mariadbd,
or mysqld --initialize-insecure) in a temporary directory, on a free port, and removed
at the end of the session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pymysql
from sqlalchemy.engine import make_url

from local_stack.ports import free_port

DEFAULT_URL = "mysql+pymysql://root@127.0.0.1:3306/"


def answers(url: str) -> bool:
    parsed = make_url(url)
    try:
        pymysql.connect(
            host=parsed.host or "127.0.0.1",
            port=parsed.port or 3306,
            user=parsed.username or "root",
            password=parsed.password or "",
            connect_timeout=2,
        ).close()
    except pymysql.MySQLError:
        return False
    return True


class ThrowawayServer:
    def __init__(self, options: tuple[str, ...] = (), cpus: set[int] | None = None) -> None:
        """`options`: more server options (the boot test's TLS certificate and key);
        `cpus`: the only CPUs the server may run on (an instance with that many vCPUs)."""
        self.directory = Path(tempfile.mkdtemp(prefix="skybridge-mysql-"))
        self.options = options
        self.cpus = cpus
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/"

    def start(self, timeout: float = 60.0) -> ThrowawayServer:
        data = self.directory / "data"
        server = shutil.which("mariadbd") or shutil.which("mysqld")
        if server is None:
            raise RuntimeError("no mariadbd or mysqld binary installed")
        common = ["--no-defaults", f"--datadir={data}", "--user=root"]
        if shutil.which("mariadb-install-db"):
            init = ["mariadb-install-db", *common, "--auth-root-authentication-method=normal"]
        else:
            init = [server, *common, "--initialize-insecure"]
        log = (self.directory / "server.log").open("ab")
        subprocess.run(init, stdout=log, stderr=log, check=True, timeout=120)
        self.process = subprocess.Popen(
            [
                server,
                *common,
                "--bind-address=127.0.0.1",
                f"--port={self.port}",
                f"--socket={self.directory / 'mysql.sock'}",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=64M",
                *self.options,
            ],
            stdout=log,
            stderr=log,
            # Before exec, so every thread the server starts inherits it.
            preexec_fn=(lambda: os.sched_setaffinity(0, self.cpus)) if self.cpus else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"throwaway server exited; see {self.directory / 'server.log'}")
            if answers(self.url):
                return self
            time.sleep(0.2)
        raise RuntimeError(f"throwaway server did not answer within {timeout}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


def server_url() -> tuple[str | None, ThrowawayServer | None, str]:
    """(url of a server without a database, the throwaway to stop, how it was found)."""
    explicit = os.environ.get("MYSQL_TEST_URL")
    if explicit:
        return explicit, None, "MYSQL_TEST_URL"
    if answers(DEFAULT_URL):
        return DEFAULT_URL, None, "127.0.0.1:3306"
    try:
        throwaway = ThrowawayServer().start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        return None, None, f"no MySQL: MYSQL_TEST_URL unset, 3306 silent, throwaway failed: {error}"
    return throwaway.url, throwaway, "throwaway server"
