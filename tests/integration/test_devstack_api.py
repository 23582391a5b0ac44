"""The local stack's API emulation (devstack.api over aws-sam-cli's): the events its routes hand the functions, in
process, with a runner that records them instead of running the functions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from samcli.lib.providers.api_provider import ApiProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
from samcli.lib.utils.stream_writer import StreamWriter

from devstack.api import REQUEST_ID_HEADER, _ApigwService
from devstack.template import DEFAULT_TEMPLATE

ROOT = Path(__file__).resolve().parents[2]


class RecordingRunner:
    events: ClassVar[list[dict[str, Any]]] = []

    def is_debugging(self) -> bool:
        return False

    def invoke(self, name: str, event: str, stdout: StreamWriter, stderr: Any = None, **_: Any) -> None:
        self.events.append(json.loads(event))
        stdout.write_str(json.dumps({"statusCode": 200, "body": "{}"}))


def test_each_request_carries_its_own_request_id_as_api_gateway_gives_it() -> None:
    # GIVEN the local API, its routes from the template
    stacks, _ = SamLocalStackProvider.get_stacks(str(DEFAULT_TEMPLATE))
    service = _ApigwService(api=ApiProvider(stacks, cwd=str(ROOT)).api, lambda_runner=RecordingRunner(), port=1)
    service.create()
    client = service._app.test_client()
    RecordingRunner.events.clear()

    # WHEN three requests are made, to one function and to another
    answers = [client.get("/multiply/abc"), client.get("/multiply/abc"), client.post("/multiply", data="{}")]

    # THEN each event has an id of its own, and each answer names its request's id, as an HTTP API's header does
    ids = [event["requestContext"]["requestId"] for event in RecordingRunner.events]
    assert len(set(ids)) == 3
    assert [answer.headers[REQUEST_ID_HEADER] for answer in answers] == ids
