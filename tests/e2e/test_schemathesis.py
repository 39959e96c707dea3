"""The API against its own document: every answer a served app gives must be one the document allows.

Schemathesis reads `/api/v1/openapi.json` from a real server (uvicorn on loopback) and sends each
operation valid and invalid requests, generated from the document. A run fails on any 5xx and on
any answer the document contradicts: a status it does not list, a body that does not match the
schema of that status, a content type it does not name, a header it requires and is missing.

Bounded for CI: a fixed number of examples per operation (about 3,000 requests in all), derandomized
so a failure replays; `FOLLOWUP_SCHEMATHESIS_EXAMPLES` raises it for a longer run by hand.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from followup.runtime import Runtime
from tests.builders.customers import make_customer
from tests.builders.strategies import make_strategy
from tests.builders.surveys import make_survey
from tests.conftest import LiveServer

EXAMPLES = int(os.environ.get("FOLLOWUP_SCHEMATHESIS_EXAMPLES", "90"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]


@pytest.fixture
def served(runtime: Runtime, api_key: str) -> Iterator[tuple[LiveServer, str]]:
    # Something to find, so that reads and updates reach past their 404s
    make_customer(runtime, "c1")
    make_survey(runtime)
    make_strategy(runtime)
    server = LiveServer(runtime)
    server.start()
    yield server, api_key
    server.stop()


def _generator_ran_out_of_stack(failure: BaseException) -> bool:
    """The generator itself (not our server) recursed without end while mutating the rule tree's
    recursive schema into a negative case: a limit of the tool, met on the operations whose bodies
    hold a rule tree."""
    text = str(failure)
    return "RecursionError at" in text and "schemathesis/generation" in text and "Inconsistent results" in text


def _described(failure: BaseException) -> str:
    """The failure with what it holds: Hypothesis reports an answer that changed on replay as a
    group whose own message names none of the answers."""
    if not isinstance(failure, BaseExceptionGroup):
        return str(failure)
    inner = "\n".join(f"  - {type(sub).__name__}: {_described(sub)}" for sub in failure.exceptions)
    return f"{failure}\n{inner}"


# About 3,500 requests take two to three minutes on CI; the suite's 120 s default would stop the run
# inside a request, and Hypothesis would then report that request as flaky.
@pytest.mark.timeout(900)
def test_every_answer_is_one_the_document_allows(served: tuple[LiveServer, str]) -> None:
    server, key = served
    schema = schemathesis.openapi.from_url(f"{server.url}/api/v1/openapi.json")
    # The key is sent on every request below; a case without it would only be a 401.
    schema.config.generation.update(with_security_parameters=False)
    # A connection refused or a read timed out on a loaded CI machine is the network's, not an
    # answer from the server: such a request is sent again (twice at most) before it counts.
    schema.config.update(request_retries=2)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 17, "every API operation is in the document"

    failures: list[str] = []
    generator_limits: list[str] = []
    requests = 0
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def exchange(case: schemathesis.Case) -> None:
                nonlocal requests
                requests += 1
                case.call_and_validate(
                    base_url=server.url, headers={"Authorization": f"Bearer {key}"}, checks=CHECKS, timeout=30
                )

            try:
                exchange()
            except Unsatisfiable:
                # An operation with no input at all (POST /calls/claim) has no bad input to send.
                assert mode is GenerationMode.NEGATIVE, operation.label
                continue
            except (AssertionError, BaseExceptionGroup) as failure:  # each operation's first contradiction
                if mode is GenerationMode.NEGATIVE and _generator_ran_out_of_stack(failure):
                    # Their bad input is covered by test_segments, test_api_errors and the route-by-route tests.
                    generator_limits.append(operation.label)
                    continue
                failures.append(f"{operation.label} ({mode.value}):\n{_described(failure)}")

    assert requests >= len(operations) * EXAMPLES, f"only {requests} requests were sent"
    assert not failures, "\n\n".join(failures)
    # The operations whose bodies hold the recursive rule tree (an audience, a match, a segment).
    recursive = {
        "POST /api/v1/segments",
        "PATCH /api/v1/segments/{key}",
        "POST /api/v1/strategies",
        "POST /api/v1/strategies/preview",
    }
    assert set(generator_limits) <= recursive, generator_limits
