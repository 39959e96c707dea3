"""Every route of the app — API, survey pages, console — answers a bad path segment, an
out-of-range number or a control character with a 4xx, quickly, whoever asks."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from followup.app import create_app
from followup.runtime import Runtime
from tests.test_console import make_staff, sign_in

# Segments no route may take: a control character is refused at the door.
REFUSED_SEGMENTS = {"nul": quote("a\x00b"), "escape": quote("a\x1bb"), "c1 control": "%C2%85"}
# Segments an integer parameter may not take, while a text one (a customer id) may: "-1" is a
# wallet's customer id like any other. An invalid UTF-8 sequence is read as U+FFFD, also text.
NUMBER_SEGMENTS = {"huge number": "9" * 20, "int64 max": str(2**63 - 1), "negative": "-1", "bad utf-8": "%ED%A0%80"}
HUGE_NUMBERS = [str(2**63 - 1), "9" * 20, "-" + "9" * 20]
# Routes that change nothing for a bad segment and answer a page or a redirect on their own terms.
SLOW_LIMIT = 2.0


def _routes(client: TestClient) -> list[Any]:
    """Every endpoint of the app with its full path, routers included under their prefixes."""
    found = []
    for route in client.app.routes:  # type: ignore[attr-defined]
        contexts = route.effective_route_contexts() if hasattr(route, "effective_route_contexts") else [route]
        found.extend(context for context in contexts if hasattr(context, "dependant"))
    assert len(found) > 30
    return found


def _is_int(param: Any) -> bool:
    annotation: Any = param.field_info.annotation
    return annotation is int or "int" in str(annotation)


def _int_query_params(route: Any) -> list[str]:
    return [param.alias for param in route.dependant.query_params if _is_int(param)]


def _client_for(path: str, api: TestClient, console: TestClient, anonymous: TestClient) -> TestClient:
    if path.startswith("/api/"):
        return api
    if path.startswith("/console"):
        return console
    return anonymous


@pytest.fixture
def clients(runtime: Runtime, api: TestClient) -> tuple[TestClient, TestClient, TestClient]:
    console = TestClient(create_app(runtime), follow_redirects=False)
    sign_in(console, "ops@wallet.example", make_staff(runtime))
    anonymous = TestClient(create_app(runtime), follow_redirects=False)
    return api, console, anonymous


def _send(client: TestClient, method: str, url: str) -> tuple[int, float]:
    """The answer's status and how long it took. A slow answer is asked again and the second time
    counts: a handler that stalls is slow both times, a pause of the shared test process (a full
    garbage collection after the suite's large property runs, a database checkpoint) once."""
    kwargs: dict[str, Any] = {}
    if method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = {}
    for _ in range(2):
        began = time.perf_counter()
        response = client.request(method, url, follow_redirects=False, **kwargs)
        elapsed = time.perf_counter() - began
        if elapsed <= SLOW_LIMIT:
            break
    return response.status_code, elapsed


def test_bad_path_segments_are_4xx_on_every_route(clients: tuple[TestClient, TestClient, TestClient]) -> None:
    api, console, anonymous = clients
    failures = []
    checked = 0
    for route in _routes(api):
        if not route.param_convertors:
            continue
        for method in sorted(route.methods - {"HEAD"}):
            integer = any(_is_int(param) for param in route.dependant.path_params)
            for name, segment in {**REFUSED_SEGMENTS, **NUMBER_SEGMENTS}.items():
                url = route.path_format
                for param in route.param_convertors:
                    url = url.replace("{" + param + "}", segment)
                client = _client_for(url, api, console, anonymous)
                status, elapsed = _send(client, method, url)
                checked += 1
                must_refuse = name in REFUSED_SEGMENTS or integer
                refused = 400 <= status < 500
                if (must_refuse and not refused) or status >= 500 or elapsed > SLOW_LIMIT:
                    failures.append((method, route.path_format, name, status, round(elapsed, 2)))
    assert checked > 30
    assert failures == [], "\n".join(map(str, failures))


def test_out_of_range_numbers_in_query_strings_are_4xx(clients: tuple[TestClient, TestClient, TestClient]) -> None:
    api, console, anonymous = clients
    failures = []
    checked = 0
    for route in _routes(api):
        if route.param_convertors:
            continue  # the path test covers these routes' segments
        for name in _int_query_params(route):
            for method in sorted(route.methods - {"HEAD"}):
                for number in HUGE_NUMBERS:
                    url = f"{route.path_format}?{name}={number}"
                    status, elapsed = _send(_client_for(url, api, console, anonymous), method, url)
                    checked += 1
                    if not (400 <= status < 500) or elapsed > SLOW_LIMIT:
                        failures.append((method, url, status, round(elapsed, 2)))
    assert checked >= 6
    assert failures == [], "\n".join(map(str, failures))


@pytest.mark.parametrize("character", ["%00", "%1b", "%7f", "%c2%85", "%ed%a0%80"])
def test_a_control_character_in_any_query_string_is_400(
    clients: tuple[TestClient, TestClient, TestClient], character: str
) -> None:
    api, console, anonymous = clients
    failures = []
    for route in _routes(api):
        url = route.path_format
        for param in route.param_convertors:
            url = url.replace("{" + param + "}", "x1")
        url = f"{url}?q=a{character}b"
        for method in sorted(route.methods - {"HEAD"}):
            status, elapsed = _send(_client_for(url, api, console, anonymous), method, url)
            if status != 400 or elapsed > SLOW_LIMIT:
                failures.append((method, url, status))
    assert failures == [], "\n".join(map(str, failures))
