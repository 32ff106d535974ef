"""Ports handed to the local stack's servers stay theirs until they bind them."""

from __future__ import annotations

import socket

from local_stack import ports
from local_stack.ports import ephemeral_range, free_port


def test_a_port_is_outside_the_ephemeral_range_free_and_never_handed_out_twice():
    low, high = ephemeral_range()
    handed = [free_port() for _ in range(200)]
    assert len(set(handed)) == len(handed)
    assert not [port for port in handed if low <= port <= high]
    assert min(handed) >= ports.LOWEST
    for port in handed[:20]:
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))  # raises if anything holds it


def test_what_the_kernel_gives_away_never_lands_on_a_handed_out_port():
    """The race fresh-clone CI lost: between free_port() and the server's bind, outbound
    connections and other bind(0) listeners take ports from the ephemeral range."""
    handed = {free_port() for _ in range(50)}
    taken = []
    try:
        for _ in range(200):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            taken.append(sock)
        assert not handed & {sock.getsockname()[1] for sock in taken}
    finally:
        for sock in taken:
            sock.close()


def test_a_port_something_listens_on_is_skipped(monkeypatch):
    spare = free_port()
    monkeypatch.setattr(ports, "_handed_out", set())
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        monkeypatch.setattr(ports, "_candidates", lambda: [taken, spare])
        monkeypatch.setattr(ports._random, "sample", lambda population, k: list(population))
        assert free_port() == spare


def test_with_no_room_outside_the_range_the_kernel_picks(monkeypatch):
    monkeypatch.setattr(ports, "_candidates", lambda: [])
    port = free_port()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
