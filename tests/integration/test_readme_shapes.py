"""The JSON shapes the README's API section shows are the API's own: each is read out of README.md and checked
against a real answer (or, for a request body, sent), so that the README cannot drift from the API again (the upload
answer's `form` once did)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.driver import Driver, HttpResponse

README = Path(__file__).resolve().parents[2] / "README.md"
# A documented value that is an example (an id, a time, a message): only its JSON type must match. Others must equal.
EXAMPLE_KEYS = frozenset({"task_id", "message", "retry_after", "progress"})


class Elided:
    """`…` in a shape: whatever the API says there."""


class Anything:
    """A bare word standing for a value (`N`)."""


Shape = Any  # dict[str, Shape | None], list[Shape], str, int, float, bool, None, Elided, Anything
_TOKENS = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<punct>[{}\[\]:,])|(?P<elided>…)|(?P<word>[^\s{}\[\]:,"…]+))'
)


def _tokens(text: str) -> Iterator[tuple[str, str]]:
    position = 0
    while position < len(text.rstrip()):
        match = _TOKENS.match(text, position)
        assert match, f"cannot read the README's shape {text!r} at {text[position:]!r}"
        kind = match.lastgroup
        assert kind is not None
        yield kind, match.group(kind)
        position = match.end()


class _Parser:
    """A shape as the README writes one: JSON, where an object may list bare keys (`{"upload_id", "url"}`) and `…`
    stands for what is left out."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = list(_tokens(text))
        self.index = 0

    def next(self) -> tuple[str, str]:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.index]

    def value(self) -> Shape:
        kind, text = self.next()
        if text == "{":
            return self.members()
        if text == "[":
            return self.elements()
        if kind == "string":
            return _string(text)
        if kind == "elided":
            return Elided()
        if kind == "word":
            return {"true": True, "false": False, "null": None}.get(text, _number(text))
        raise AssertionError(f"unexpected {text!r} in the README's shape {self.text!r}")

    def members(self) -> dict[str, Shape | None]:
        members: dict[str, Shape | None] = {}
        while self.peek()[1] != "}":
            kind, text = self.next()
            if kind == "string":
                name = _string(text)
                members[name] = self.value() if self.peek()[1] == ":" and self.next() else None
            else:
                assert kind == "elided", f"a member of {self.text!r} is neither a key nor …"
            if self.peek()[1] == ",":
                self.next()
        self.next()
        return members

    def elements(self) -> list[Shape]:
        elements = []
        while self.peek()[1] != "]":
            elements.append(self.value())
            if self.peek()[1] == ",":
                self.next()
        self.next()
        return elements


def _string(token: str) -> str:
    return token[1:-1].replace('\\"', '"')


def _number(word: str) -> Any:
    try:
        return float(word) if "." in word else int(word)
    except ValueError:
        return Anything()  # N: a value of the reader's


def parse(text: str) -> Shape:
    parser = _Parser(text)
    shape = parser.value()
    assert parser.index == len(parser.tokens), f"more after the README's shape {text!r}"
    return shape


def api_section() -> str:
    text = README.read_text()
    start = text.index("## The HTTP API")
    return text[start : text.index("\n## ", start + 1)]


def documented_shapes() -> list[str]:
    """Every JSON shape the API section shows: in inline code, and on the output lines of its console examples
    (a command's own `--json` body is what the reader sends, not an answer: left out)."""
    shapes: list[str] = []
    section = api_section()
    consoles = re.findall(r"```console\n(.*?)```", section, flags=re.S)
    for block in consoles:
        shapes += [line for line in block.splitlines() if line.startswith("{")]
    prose = re.sub(r"```.*?```", "", section, flags=re.S)
    shapes += [code for code in re.findall(r"`([^`]+)`", prose) if code.startswith("{")]
    return shapes


def conforms(documented: Shape, actual: Any, key: str = "") -> list[str]:
    """What in `actual` differs from the documented shape (nothing: it conforms)."""
    where = key or "the answer"
    if isinstance(documented, Elided | Anything):
        return []
    if isinstance(documented, dict):
        if not isinstance(actual, dict):
            return [f"{where} is {type(actual).__name__}, the README shows an object"]
        problems = []
        for name, value in documented.items():
            if name not in actual:
                problems.append(f"the README shows {name!r} in {where}; the API has {sorted(actual)}")
            elif value is not None:
                problems += conforms(value, actual[name], name)
        return problems
    if isinstance(documented, list):
        if not isinstance(actual, list) or not actual:
            return [f"{where} is {actual!r}, the README shows a list of items"]
        shown = [item for item in documented if not isinstance(item, Elided)]
        return [problem for item in shown for problem in conforms(item, actual[0], f"{where}[0]")]
    if type(documented) is not type(actual) and not (isinstance(documented, float) and isinstance(actual, int)):
        return [f"{where} is {actual!r}, the README shows {documented!r}"]
    if key not in EXAMPLE_KEYS and isinstance(documented, str) and "…" not in documented and documented != actual:
        return [f"{where} is {actual!r}, the README shows {documented!r}"]
    return []


# What each shape the README shows is the shape of: a real answer, or a request body the API must take. Told apart by
# the keys each documents; a new shape in the README needs its line here.
Exchange = Callable[[Driver], Any]


def _upload_form(driver: Driver) -> Any:
    created = driver.create_upload(body={"bytes": 5000})
    assert created.status == 201, created.body
    return created.body


def _accepted(driver: Driver) -> Any:
    submitted = driver.submit("multiply", {"x": 2, "y": 3})
    assert submitted.status == 202, submitted.body
    return submitted.body


def _succeeded(driver: Driver) -> Any:
    task_id = _accepted(driver)["task_id"]
    driver.deliver()
    done: HttpResponse = driver.get("multiply", task_id)
    assert done.status == 200, done.body
    return done.body


def _invalid(driver: Driver) -> Any:
    refused = driver.submit("multiply", {"x": True, "y": "3"})
    assert refused.status == 422
    return refused.body


def _input_link(driver: Driver) -> Any:
    # An input over what the record keeps (2 KiB) is kept in the bucket: the page asks for its link.
    submitted = driver.submit("describe", {"values": [1.5] * 1000})
    assert submitted.status == 202, submitted.body
    from result.app import lambda_handler as result_handler
    from tests.support.events import http_event, lambda_context

    event = http_event("GET", f"/describe/{submitted.body['task_id']}/input", query=[("redirect", "false")])
    answer = result_handler(event, lambda_context())
    assert answer["statusCode"] == 200, answer
    return json.loads(answer["body"])


ANSWERS: dict[str, tuple[Callable[[dict[str, Any]], bool], Exchange]] = {
    "GET .../input?redirect=false of an input kept apart": (lambda shape: "input_url" in shape, _input_link),
    "POST /uploads' answer": (lambda shape: "upload_id" in shape, _upload_form),
    "a 422's problem": (lambda shape: "errors" in shape, _invalid),
    "GET of a finished task": (lambda shape: "result" in shape, _succeeded),
    "POST /<task>'s 202": (lambda shape: "task_id" in shape and "result" not in shape, _accepted),
}
# Request bodies the README shows: sent with the keys it documents, and taken.
REQUESTS: dict[str, tuple[Callable[[dict[str, Any]], bool], Callable[[Driver, dict[str, Any]], HttpResponse]]] = {
    "POST /uploads' body": (lambda shape: set(shape) == {"bytes"}, lambda d, body: d.create_upload(body=body)),
}
REQUEST_VALUES = {"bytes": 5000}


def _kind(shape: dict[str, Any]) -> str:
    matches = [name for name, (test, _) in {**ANSWERS, **REQUESTS}.items() if test(shape)]
    assert len(matches) == 1, f"the README's shape {shape} is {matches or 'of no known exchange'}: map it in {__name__}"
    return matches[0]


SHAPES = documented_shapes()


def test_the_readme_shows_the_shapes_of_every_exchange_this_test_knows() -> None:
    kinds = {_kind(parse(text)) for text in SHAPES}

    assert kinds == set(ANSWERS) | set(REQUESTS)


@pytest.mark.parametrize("text", SHAPES)
def test_the_readme_shape_is_the_apis_own(driver: Driver, text: str) -> None:
    # GIVEN a shape the README shows
    shape = parse(text)
    kind = _kind(shape)

    if kind in REQUESTS:
        # WHEN it is sent with the keys it documents, THEN the API takes it
        body = {name: REQUEST_VALUES[name] for name in shape}
        answer = REQUESTS[kind][1](driver, body)
        assert answer.status < 300, answer.body
        return

    # WHEN the API gives that answer for real, THEN it holds everything the README shows, as the README shows it
    actual = ANSWERS[kind][1](driver)
    assert conforms(shape, actual) == [], f"README.md shows {text}"
