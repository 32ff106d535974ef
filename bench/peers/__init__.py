"""Peers: the same accept path built another way, measured side by side with ours.

`express/` is the seed's design (Express 5 + mysql2, a Node cluster); its npm dependencies
are pinned in its own package.json and package-lock.json and installed here with `npm ci`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from local_stack.ports import free_port
from local_stack.processes import Child, http_ready

EXPRESS = Path(__file__).resolve().parent / "express"
# One pool per worker, as large as ours (runtime.settings: database_pool_size).
POOL_SIZE = 8


class PeerUnavailable(RuntimeError):
    """A peer cannot run here (no Node.js, or its dependencies did not install)."""


def node_path() -> str:
    node = shutil.which("node")
    if node is None:
        raise PeerUnavailable("the Express peer needs Node.js 20+ on PATH (apt-get install nodejs)")
    return node


def install_express() -> None:
    """`npm ci` from the lockfile, once per lockfile: a stamp holds the lockfile's hash."""
    lock = (EXPRESS / "package-lock.json").read_bytes()
    digest = hashlib.sha256(lock).hexdigest()
    stamp = EXPRESS / "node_modules" / ".installed"
    if stamp.is_file() and stamp.read_text() == digest:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise PeerUnavailable("the Express peer needs npm on PATH to install its dependencies")
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=EXPRESS,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise PeerUnavailable(f"npm ci in {EXPRESS} failed: {done.stderr.strip()[-500:]}")
    stamp.write_text(digest)


def express(name: str, database_url: str, workers: int, logs: Path) -> tuple[Child, str]:
    """The Express peer on a free loopback port, serving the database at `database_url`
    (a SQLAlchemy MySQL URL; the schema must exist), with `workers` cluster workers."""
    install_express()
    url = make_url(database_url)
    uri = url.set(drivername="mysql", query={}).render_as_string(hide_password=False)
    port = free_port()
    env = os.environ | {
        "PEER_DATABASE_URL": uri,
        "PEER_PORT": str(port),
        "PEER_WORKERS": str(workers),
        "PEER_POOL_SIZE": str(POOL_SIZE),
        "NODE_ENV": "production",
    }
    child = Child(name, [node_path(), str(EXPRESS / "server.js")], env, logs)
    child.start(http_ready(f"http://127.0.0.1:{port}/healthz"), timeout=60)
    return child, f"http://127.0.0.1:{port}"
