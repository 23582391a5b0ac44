"""The HTTP API: aws-sam-cli's own API Gateway emulation (routes from the template, payload 2.0 events) on werkzeug's
server, with the routes' JWT authorizers (devstack.auth) in front of the functions' execution environments
(devstack.environments)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import Response, g, request
from samcli.local.apigw.event_constructor import construct_v2_event_http
from samcli.local.apigw.local_apigw_service import LocalApigwService
from samcli.local.apigw.path_converter import PathConverter
from samcli.local.apigw.route import Route

from devstack.auth import JwtAuthorizer, Refusal
from devstack.environments import ProcessLambdaRunner
from devstack.serving import ThreadedServer
from devstack.template import ApiSecurity

logger = logging.getLogger(__name__)


class RouteAuthorizers:
    """Each route's authorizer, as the template declares it: routes whose security names a JWT authorizer need a
    valid token; routes whose security is empty or absent are open."""

    def __init__(self, security: ApiSecurity, authorizers: dict[str, JwtAuthorizer]) -> None:
        self._security = security
        self._authorizers = authorizers

    def authorize(self, path: str, method: str, headers: Any) -> dict[str, Any] | Refusal | None:
        for requirement in self._security.security(path, method):
            for scheme, scopes in requirement.items():
                authorizer = self._authorizers.get(scheme)
                if authorizer is None:
                    raise LookupError(f"route {method} {path}: the local stack has no authorizer {scheme!r}")
                return authorizer.authorize(headers, scopes)
        return None


# The header an HTTP API answers every request with, holding the id its function sees as requestContext.requestId.
REQUEST_ID_HEADER = "apigw-requestid"


class _ApigwService(LocalApigwService):  # type: ignore[misc]
    authorizers: RouteAuthorizers | None = None

    def _request_handler(self, **kwargs: Any) -> Any:
        # Each request its own id, as API Gateway gives it: samcli's RequestContextV2 draws its default id once, when
        # its module loads, so every request would carry the same one and a 500's id would find no single log line.
        g.devstack_request_id = str(uuid.uuid4())
        response = self._authorized_response(**kwargs)
        response.headers[REQUEST_ID_HEADER] = g.devstack_request_id
        return response

    def _authorized_response(self, **kwargs: Any) -> Any:
        if self.authorizers is not None:
            route: Route = self._get_current_route(request)
            decision = self.authorizers.authorize(route.path, request.method, request.headers)
            if isinstance(decision, Refusal):
                # API Gateway answers before any function runs.
                return Response(decision.body, status=decision.status, headers=decision.headers)
            g.devstack_authorizer = decision
        return super()._request_handler(**kwargs)

    def _generate_lambda_event(self, flask_request: Any, route: Route, method: str, endpoint: str) -> Any:
        try:
            event = super()._generate_lambda_event(flask_request, route, method, endpoint)
        except UnicodeDecodeError:
            # A body that is not UTF-8 text reaches the function base64-encoded (isBase64Encoded), as API Gateway
            # passes binary payloads; samcli alone would answer 502 without calling the function.
            if route.event_type != Route.HTTP or route.payload_format_version not in (None, "2.0"):
                raise
            path = PathConverter.convert_path_to_api_gateway(endpoint)
            event = construct_v2_event_http(
                flask_request=flask_request,
                port=self.port,
                binary_types=["*/*"],
                stage_name=self.api.stage_name,
                stage_variables=self.api.stage_variables,
                route_key=self._v2_route_key(method, path, route.is_default_route),
            )
        event["requestContext"]["requestId"] = g.devstack_request_id
        authorizer = g.get("devstack_authorizer")
        if authorizer is not None:
            event["requestContext"]["authorizer"] = authorizer
        return event


class ApiServer:
    def __init__(
        self,
        api: Any,
        runner: ProcessLambdaRunner,
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        authorizers: RouteAuthorizers | None = None,
    ) -> None:
        if not api.routes:
            raise ValueError("the template defines no API routes")
        self._service = _ApigwService(api=api, lambda_runner=runner, port=port, host=host)
        self._service.authorizers = authorizers
        # create() builds the Flask app; run() would block and take over SIGTERM, so we serve the app ourselves.
        self._service.create()
        self._server = ThreadedServer(self._service._app, host, port)
        # samcli puts the port in the events it builds; with port 0 only the bound socket knows it.
        self._service.port = self._server.port
        self.routes = list(api.routes)

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()
