"""Run a command as root in a private mount namespace where /etc, /opt, /var, /usr and /root
are overlays: it sees the machine's files and may write anywhere, but every write lands in
the sandbox's own directory, never on the real tree (`unshare --mount`, overlayfs).

`Sandbox.install(path, text)` places a file (a stand-in binary, a config) in the overlay
before the command runs; `Sandbox.path(path)` is where a file the command wrote can be read.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

OVERLAID = ("/etc", "/opt", "/var", "/usr", "/root")

_ENTER = r"""
set -e
mount --make-rprivate /
for dir in {dirs}; do
  name=$(echo "$dir" | tr / _)
  mount -t overlay overlay \
    -o "lowerdir=$dir,upperdir={root}/upper$name,workdir={root}/work$name" "$dir"
done
exec "$@"
"""


def available() -> str | None:
    """Why the sandbox cannot run here, or None."""
    if os.geteuid() != 0:
        return "the boot runs as root (cloud-init does); run the tests as root"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    return None


class Sandbox:
    def __init__(self, root: Path) -> None:
        self.root = root
        for directory in OVERLAID:
            name = directory.replace("/", "_")
            (root / f"upper{name}").mkdir(parents=True, exist_ok=True)
            (root / f"work{name}").mkdir(parents=True, exist_ok=True)

    def path(self, path: str) -> Path:
        """Where `path`, as the sandboxed command saw it, is on the real machine."""
        top = next(d for d in OVERLAID if path == d or path.startswith(d + "/"))
        return self.root / f"upper{top.replace('/', '_')}" / path[len(top) + 1 :]

    def install(self, path: str, text: str, mode: int = 0o755) -> None:
        target = self.path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)

    def argv(self, *command: str) -> list[str]:
        """`command` inside the sandbox (a new mount namespace, the overlays mounted)."""
        script = _ENTER.format(dirs=" ".join(OVERLAID), root=self.root)
        return ["unshare", "--mount", "--", "/bin/bash", "-c", script, "sandbox", *command]

    def run(
        self, *command: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """`command` with exactly `env` as its environment (cloud-init's is almost empty)."""
        return subprocess.run(
            ["env", "-i", *[f"{k}={v}" for k, v in (env or {}).items()], *self.argv(*command)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
