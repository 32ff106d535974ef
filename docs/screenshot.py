"""`python docs/screenshot.py`: the README's picture of the live view, taken from a real run.

Runs `make demo`'s command in a tmux pane (a real terminal, so rich draws its live view),
captures the pane with its colours once the GCP outage is under way, and draws the
captured text as a PNG with Pillow (matplotlib's dependency) in DejaVu Sans Mono.
Writes docs/live-view.png; the demo's own timeline is copied to docs/timeline.png.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from rich.color import ColorSystem
from rich.text import Text

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
SESSION = "skybridge-screenshot"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
BACKGROUND, FOREGROUND = (24, 24, 28), (220, 220, 220)


def capture(workdir: Path, wait_for: str, timeout: float = 240) -> str:
    """The pane once `wait_for` (a regex) matches it."""
    command = f"cd {ROOT} && {sys.executable} -m local_stack --workdir {workdir} demo"
    subprocess.run(["tmux", "new-session", "-d", "-s", SESSION, "-x", "100", "-y", "40",
                    command + "; sleep 30"], check=True)  # fmt: skip
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            pane = subprocess.run(["tmux", "capture-pane", "-p", "-e", "-t", SESSION],
                                  capture_output=True, text=True, check=False)  # fmt: skip
            screen = pane.stdout  # empty while a fresh tmux server is still coming up
            if re.search(wait_for, re.sub(r"\x1b\[[0-9;]*m", "", screen)):
                return screen
            time.sleep(0.5)
        raise TimeoutError(f"{wait_for!r} never appeared on the screen")
    finally:
        _wait_for_the_end(deadline)
        subprocess.run(["tmux", "kill-session", "-t", SESSION], check=False)


def _wait_for_the_end(deadline: float) -> None:
    """Until the demo has written its timeline and stopped everything."""
    while time.monotonic() < deadline:
        pane = subprocess.run(["tmux", "capture-pane", "-p", "-S", "-200", "-t", SESSION],
                              capture_output=True, text=True, check=False)  # fmt: skip
        if "nothing left running" in pane.stdout:
            return
        time.sleep(1)


def draw(screen: str, path: Path) -> None:
    font = ImageFont.truetype(FONT, 15)
    width, height = font.getbbox("M")[2], 19
    lines = screen.rstrip("\n").split("\n")
    image = Image.new("RGB", (width * 100 + 24, height * len(lines) + 24), BACKGROUND)
    pen = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        text, column = Text.from_ansi(line), 0
        for segment in text.render(_console()):
            colour = segment.style.color if segment.style else None
            rgb = FOREGROUND
            if colour is not None:
                rgb = colour.get_truecolor(foreground=True).rgb if not colour.is_default else rgb
                rgb = tuple(rgb) if isinstance(rgb, tuple) else FOREGROUND
            pen.text((12 + column * width, 12 + row * height), segment.text, font=font, fill=rgb)
            column += len(segment.text)
    image.save(path)


def _console():
    from rich.console import Console

    return Console(color_system=ColorSystem.TRUECOLOR.name.lower(), width=100)


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="skybridge-screenshot-"))
    screen = capture(workdir, r"alarms firing\s+│\s+\S*Outbox")
    draw(screen, DOCS / "live-view.png")
    shutil.copy(workdir / "timeline.png", DOCS / "timeline.png")
    print(DOCS / "live-view.png", DOCS / "timeline.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
