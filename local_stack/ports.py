"""Free loopback ports, from outside the kernel's ephemeral range.

A port found free is handed to a server that binds it a moment later, in another process.
Asking the kernel for one (`bind(("127.0.0.1", 0))`) draws from the ephemeral range, the
same range every outbound connection takes its source port from and every other
`bind(0)` listener is given: in that moment anything else on the machine can take it.
Fresh-clone CI saw exactly that: a stack's API failed with `Address already in use` on
the port it had been handed, and its balancer was answered by some other server there.
Outside the ephemeral range the kernel assigns nothing by itself, so a port that binds
now stays free until somebody binds it by number. Ports are drawn at random (two processes
picking at once rarely meet) and never handed out twice by one process.
"""

from __future__ import annotations

import functools
import itertools
import random
import socket
import threading
from pathlib import Path

LINUX_DEFAULT_EPHEMERAL = (32768, 60999)  # net.ipv4.ip_local_port_range's default
LOWEST = 10000  # below: the registered ports services commonly listen on
_handed_out: set[int] = set()
_lock = threading.Lock()
_random = random.SystemRandom()  # from the OS: a test's random.seed() cannot repeat it


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range (Linux's default where it cannot be read)."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        low, high = (int(n) for n in text.split())
    except (OSError, ValueError):
        return LINUX_DEFAULT_EPHEMERAL
    return low, high


@functools.cache
def _candidates() -> tuple[int, ...]:
    """Every port at or above LOWEST outside the ephemeral range (read once)."""
    low, high = ephemeral_range()
    return (*range(LOWEST, max(LOWEST, low)), *range(max(LOWEST, high + 1), 65536))


def _binds(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback TCP port that nothing listens on and the kernel will not give away."""
    with _lock:
        candidates = _candidates()
        tries = _random.sample(candidates, min(64, len(candidates)))  # almost always enough
        for port in itertools.chain(tries, candidates):
            if port not in _handed_out and _binds(port):
                _handed_out.add(port)
                return port
    # Every port outside the ephemeral range is taken (or there is none): the kernel's pick.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
