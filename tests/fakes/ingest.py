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
        items = json.loads(request.get_data())["items"]
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
