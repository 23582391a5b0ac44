"""The HTTP API: aws-sam-cli's own API Gateway emulation (routes from the template, payload 2.0 events),
served by a threaded werkzeug server that can be stopped, with handlers invoked in this process."""

from __future__ import annotations

import logging
import threading
from typing import Any

from samcli.local.apigw.local_apigw_service import LocalApigwService
from werkzeug.serving import BaseWSGIServer, make_server

from devstack.lambdas import InProcessLambdaRunner

logger = logging.getLogger(__name__)


class ApiServer:
    def __init__(self, api: Any, runner: InProcessLambdaRunner, *, host: str = "127.0.0.1", port: int = 3000) -> None:
        if not api.routes:
            raise ValueError("the template defines no API routes")
        self._service = LocalApigwService(api=api, lambda_runner=runner, port=port, host=host)
        # create() builds the Flask app; run() would block and take over SIGTERM, so we serve the app ourselves.
        self._service.create()
        self._server: BaseWSGIServer = make_server(host, port, self._service._app, threaded=True)
        # samcli puts the port in the events it builds; with port 0 only the bound socket knows it.
        self._service.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="api", daemon=True)
        self.routes = list(api.routes)

    @property
    def url(self) -> str:
        return f"http://{self._server.host}:{self._server.server_port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
