"""A fake of Google's REST control plane, generic over resource-oriented APIs.

One in-process HTTP server answers for every API that google-api-python-client knows,
using the discovery documents shipped inside that package (`discovery.py`): each request is
matched to a discovery method by HTTP verb and flat path, and **its body is validated
against the method's request schema**, so a misspelled field fails a test, not a deploy.
The server (`server.py`) carries requests out generically; each API's own behaviour lives
in one module per API under `apis/`.

Clients reach API `<api>` `<version>` at `<url>/<api>.<version>/<servicePath>` (see
`gcp_stack.api.endpoint()`), for example `<url>/storage.v1/storage/v1/`.
"""

from local_stack.control_plane.discovery import Invalid, validate
from local_stack.control_plane.server import ControlPlane

__all__ = ["ControlPlane", "Invalid", "validate"]
