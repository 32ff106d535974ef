"""How gunicorn runs the API: its own log lines as JSON, like every other line we write.

`python -m gunicorn --logger-class runtime.serving.JsonLogger ...` (see runtime.commands).
gunicorn's access-log format is a printf template: a `%0A` in the path or a `"` or `\\` in a
header went into the line raw, so a client could end a line early or forge a field. Here
each field is a JSON value, serialised by the same formatter as the app's logs.
"""

from __future__ import annotations

import sys
from typing import Any

from gunicorn.glogging import Logger

from runtime.observability import JsonFormatter
from runtime.settings import SettingsError


class JsonLogger(Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(JsonFormatter())

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        # A worker that cannot load the app because a setting is wrong: the sentence naming
        # the variable, not a traceback through gunicorn's loader (then "failed to boot").
        error = sys.exc_info()[1]
        if isinstance(error, SettingsError):
            self.error_log.error("%s", error, extra={"event": "settings.invalid"})
            return
        super().exception(msg, *args, **kwargs)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status
        code = int(status.split(None, 1)[0]) if isinstance(status, str) else int(status)
        request_id = next(
            (value for name, value in resp.headers if name.lower() == "x-request-id"), None
        )
        self.access_log.info(
            "request",
            extra={
                "event": "http.access",
                "method": environ.get("REQUEST_METHOD"),
                "path": environ.get("PATH_INFO"),
                "status": code,
                "duration_ms": request_time.seconds * 1000 + request_time.microseconds // 1000,
                "request_id": request_id,
            },
        )
