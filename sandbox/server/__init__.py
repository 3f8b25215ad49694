"""The Zuora sandbox HTTP server: Zuora's REST API shapes (OAuth, AQuA, ZOQL query/queryMore,
Object Query) over a dataset directory, with switchable faults and a small mutation API.

    from sandbox.server import SandboxServer
    with SandboxServer(data_dir, token_ttl=60) as srv:
        requests.post(f"{srv.url}/oauth/token", data={...})

``serve()`` is the blocking entry point behind ``recon sandbox serve``.
"""

from sandbox.server.app import SandboxServer, serve
from sandbox.server.faults import Fault, FaultSpecError, parse_spec
from sandbox.server.wire import SandboxError

__all__ = ["Fault", "FaultSpecError", "SandboxError", "SandboxServer", "parse_spec", "serve"]
