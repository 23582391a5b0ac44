"""The HTTP API: aws-sam-cli's own API Gateway emulation (routes from the template, payload 2.0 events),
served with persistent connections by devstack.wsgi, with handlers invoked in execution environments of their
own (devstack.environments) or in this process (devstack.lambdas)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from samcli.local.apigw.event_constructor import construct_v2_event_http
from samcli.local.apigw.local_apigw_service import LocalApigwService
from samcli.local.apigw.path_converter import PathConverter
from samcli.local.apigw.route import Route

from devstack.lambdas import LambdaRunner
from devstack.wsgi import WSGIServer

logger = logging.getLogger(__name__)


class _ApigwService(LocalApigwService):  # type: ignore[misc]
    def _generate_lambda_event(self, flask_request: Any, route: Route, method: str, endpoint: str) -> Any:
        try:
            return super()._generate_lambda_event(flask_request, route, method, endpoint)
        except UnicodeDecodeError:
            # A body that is not UTF-8 text reaches the function base64-encoded (isBase64Encoded), as API Gateway
            # passes binary payloads; samcli alone would answer 502 without calling the function.
            if route.event_type != Route.HTTP or route.payload_format_version not in (None, "2.0"):
                raise
            path = PathConverter.convert_path_to_api_gateway(endpoint)
            return construct_v2_event_http(
                flask_request=flask_request,
                port=self.port,
                binary_types=["*/*"],
                stage_name=self.api.stage_name,
                stage_variables=self.api.stage_variables,
                route_key=self._v2_route_key(method, path, route.is_default_route),
            )


class ApiServer:
    def __init__(
        self,
        api: Any,
        runner: LambdaRunner,
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        max_concurrency: int | None = None,
    ) -> None:
        if not api.routes:
            raise ValueError("the template defines no API routes")
        self._service = _ApigwService(api=api, lambda_runner=runner, port=port, host=host)
        # create() builds the Flask app; run() would block and take over SIGTERM, so we serve the app ourselves.
        self._service.create()
        self._server = WSGIServer(host, port, self._service._app, max_concurrency=max_concurrency, name="api")
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
