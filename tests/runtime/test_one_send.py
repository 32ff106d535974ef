"""The API's responses go out in one send (runtime.serving.OneSendResponse), byte for byte
what gunicorn's own Response sends, for every kind of body."""

from __future__ import annotations

import re

import pytest
from gunicorn.config import Config
from gunicorn.http import wsgi
from gunicorn.http.parser import RequestParser

from runtime.serving import OneSendResponse

ADDRESS = ("127.0.0.1", 40000)
SERVER = ("127.0.0.1", 8000)


class Socket:
    def __init__(self) -> None:
        self.sends: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.sends.append(bytes(data))


def respond(response_class, method: str, status: str, headers, body: list[bytes]):
    cfg = Config()
    raw = f"{method} /v1/submissions HTTP/1.1\r\nHost: api\r\nContent-Length: 0\r\n\r\n"
    request = next(iter(RequestParser(cfg, iter([raw.encode()]), ADDRESS)))
    sock = Socket()
    response, _ = wsgi.create(request, sock, ADDRESS, SERVER, cfg, response_class=response_class)
    response.start_response(status, list(headers))
    for chunk in body:
        response.write(chunk)
    response.close()
    return sock.sends


def without_date(data: bytes) -> bytes:
    return re.sub(rb"Date: [^\r]*\r\n", b"", data)


CASES = {
    "202 with a length": ("POST", "202 Accepted",
                          [("Content-Type", "application/json"), ("Content-Length", "11")],
                          [b'{"id":"01"}']),
    "streamed (chunked)": ("POST", "200 OK", [("Content-Type", "text/plain")],
                           [b"one", b"two", b"three"]),
    "no content": ("POST", "204 No Content", [], []),
    "HEAD": ("HEAD", "200 OK", [("Content-Length", "11")], [b'{"id":"01"}']),
    "an empty body": ("POST", "200 OK", [("Content-Length", "0")], []),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_the_bytes_on_the_wire_are_gunicorns(case):
    ours = respond(OneSendResponse, *CASES[case])
    theirs = respond(wsgi.Response, *CASES[case])
    assert without_date(b"".join(ours)) == without_date(b"".join(theirs))


def test_a_response_with_a_length_is_one_send_not_two():
    ours = respond(OneSendResponse, *CASES["202 with a length"])
    theirs = respond(wsgi.Response, *CASES["202 with a length"])
    assert len(theirs) == 2  # the control: gunicorn sends the header block on its own
    assert len(ours) == 1
    assert ours[0].startswith(b"HTTP/1.1 202 Accepted\r\n")
    assert ours[0].endswith(b'\r\n\r\n{"id":"01"}')
