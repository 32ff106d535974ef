"""A stand-in for the `ingest` function on loopback, for relay tests: it records what it
receives and answers the way it is told (publish, reject some ids, fail, be slow)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


class FakeIngest:
    def __init__(self) -> None:
        self.received: Counter[str] = Counter()
        self.requests = 0
        self.authorizations: list[str | None] = []
        self.status = 200
        self.delay = 0.0
        self.reject: set[str] = set()
        # A batch holding one of these is refused as a whole (as ingest did for JSON its
        # parser could not read): `refuse_status` 400 is a refusal, 500 a crash.
        self.poison: set[str] = set()
        self.refuse_status = 400
        self.body_sizes: list[int] = []
        self.bodies_ascii_escaped = 0
        self.lock = threading.Lock()
        self.request_seen = threading.Event()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/"

    def __enter__(self) -> FakeIngest:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()

    def _app(self, environ, start_response):
        request = Request(environ)
        with self.lock:
            self.requests += 1
            self.authorizations.append(request.headers.get("Authorization"))
            status, delay, reject = self.status, self.delay, set(self.reject)
        self.request_seen.set()
        if delay:
            time.sleep(delay)
        if status != 200:
            return Response("unavailable", status=status)(environ, start_response)
        raw = request.get_data()
        items = json.loads(raw)["items"]
        with self.lock:
            self.body_sizes.append(len(raw))
            self.bodies_ascii_escaped += b"\\u00" in raw
            poisoned = any(item["submission_id"] in self.poison for item in items)
        if poisoned:
            return Response("poison", status=self.refuse_status)(environ, start_response)
        results = []
        with self.lock:
            for item in items:
                sid = item["submission_id"]
                if sid in reject:
                    results.append({"submission_id": sid, "status": "rejected", "error": "bad"})
                else:
                    self.received[sid] += 1
                    results.append(
                        {"submission_id": sid, "status": "published", "message_id": f"m-{sid}"}
                    )
        body = json.dumps({"results": results})
        return Response(body, mimetype="application/json")(environ, start_response)
