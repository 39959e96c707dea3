"""Bounds on what one request may store: attributes, rule trees, titles and prompts.

Each limit is a setting with a documented default. At the limit a request is accepted; one over,
it is refused with 422 `limit_exceeded` (or, for events, a rejection naming the limit) and nothing
is written. One-line texts refuse control characters (422 `invalid_character`), since a survey
title becomes an email subject. What was stored before a limit existed still reads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import update

from followup.app import create_app
from followup.config import InputLimits, Settings
from followup.customers.schemas import attributes_problem
from followup.kernel.actors import SYSTEM
from followup.kernel.time import ManualClock
from followup.rules.tree import Rule, RuleTooLarge, check_size
from followup.runtime import Runtime, build_runtime
from followup.staff import service as staff
from followup.strategies import service as strategies
from followup.strategies.schemas import StrategyCreate
from followup.surveys.models import SurveyVersion
from followup.worker import Worker
from tests.builders.customers import make_customer
from tests.builders.events import transfer
from tests.builders.strategies import make_strategy, strategy_body
from tests.builders.surveys import make_survey, survey_body
from tests.conftest import wipe
from tests.test_api_errors import Rows, assert_error, database_rows

DEFAULTS = InputLimits()
CONDITION = {"field": "event.amount", "op": "gte", "value": 1}


@pytest.fixture
def existing(runtime: Runtime) -> Rows:
    make_customer(runtime, "c1")
    make_survey(runtime)
    make_strategy(runtime)
    return database_rows(runtime)


def test_the_defaults_are_the_documented_ones(settings: Settings) -> None:
    assert settings.input_limits == InputLimits(
        max_attributes=50,
        max_attribute_bytes=1024,
        max_rule_nodes=200,
        max_rule_list_items=500,
        max_title_chars=200,
        max_prompt_chars=1000,
    )
    assert settings.input_limits == DEFAULTS


# -- customer attributes -----------------------------------------------------------------------


def test_a_customer_with_as_many_attributes_as_allowed_is_kept(api: TestClient) -> None:
    attributes = {f"a{n}": n for n in range(50)}

    response = api.put("/api/v1/customers/c9", json={"attributes": attributes})

    assert response.status_code == 200, response.text
    assert api.get("/api/v1/customers/c9").json()["attributes"] == attributes


def test_one_attribute_too_many_is_refused_and_no_customer_is_created(
    api: TestClient, runtime: Runtime, existing: Rows
) -> None:
    attributes = {f"a{n}": n for n in range(51)}

    response = api.put("/api/v1/customers/c9", json={"attributes": attributes, "email": "c9@example.com"})

    assert_error(
        response, 422, "limit_exceeded", "attributes", "attributes: at most 50 attributes are kept; these are 51."
    )
    assert database_rows(runtime) == existing
    assert api.get("/api/v1/customers/c9").status_code == 404


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("x" * 1024, 1024),
        ("支" * 341 + "x", 1024),  # three bytes per character in UTF-8
        (["x" * 1020], 1024),  # a list is measured as its JSON: ["…"]
        (10**1023, 1024),
    ],
)
def test_an_attribute_value_at_the_size_limit_is_kept(api: TestClient, value: Any, size: int) -> None:
    response = api.put("/api/v1/customers/c9", json={"attributes": {"note": value}})

    assert response.status_code == 200, response.text
    assert api.get("/api/v1/customers/c9").json()["attributes"] == {"note": value}


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("x" * 1025, 1025),
        ("支" * 342, 1026),
        (["x" * 1021], 1025),
    ],
)
def test_an_attribute_value_over_the_size_limit_is_refused_and_the_customer_unchanged(
    api: TestClient, runtime: Runtime, existing: Rows, value: Any, size: int
) -> None:
    response = api.put("/api/v1/customers/c1", json={"attributes": {"tier": "gold", "note": value}})

    assert_error(
        response,
        422,
        "limit_exceeded",
        "attributes.note",
        f"attributes.note: the value of 'note' may hold at most 1024 bytes; it has {size}.",
    )
    assert database_rows(runtime) == existing
    assert api.get("/api/v1/customers/c1").json()["attributes"] == {"tier": "gold"}


def test_a_body_too_large_to_read_never_reaches_the_service(api: TestClient, runtime: Runtime, existing: Rows) -> None:
    huge_attribute = api.put("/api/v1/customers/c1", json={"attributes": {"note": "x" * 10_000_000}})
    huge_tree = api.post("/api/v1/strategies", json=strategy_body("too-big", audience={"any": _conditions(100_000)}))

    assert_error(huge_attribute, 413, "body_too_large", None)
    assert_error(huge_tree, 413, "body_too_large", None)
    assert database_rows(runtime) == existing


def test_an_attribute_name_is_held_to_the_same_size() -> None:
    assert attributes_problem({"n" * 1024: 1}, limits=DEFAULTS) is None
    assert attributes_problem({"n" * 1025: 1}, limits=DEFAULTS) == (
        "attributes",
        "an attribute name may hold at most 1024 bytes",
    )


# -- event attributes (the hot path) -------------------------------------------------------------


def _events_stored(runtime: Runtime) -> int:
    return len(database_rows(runtime)["events"])


def test_an_event_at_the_attribute_limits_is_stored(api: TestClient, runtime: Runtime) -> None:
    many = transfer("e-many", attributes={f"a{n}": n for n in range(50)})
    large = transfer("e-large", attributes={"note": "x" * 1024, "to": "merchant"})

    result = api.post("/api/v1/events", json={"events": [many, large]}).json()

    assert result == {"accepted": 2, "duplicates": 0, "rejected": []}
    assert _events_stored(runtime) == 2


def test_events_over_the_attribute_limits_are_rejected_and_not_stored(api: TestClient, runtime: Runtime) -> None:
    many = transfer("e-many", attributes={f"a{n}": n for n in range(51)})
    large = transfer("e-large", attributes={"note": "x" * 1025})
    nested = transfer("e-nested", attributes={"cart": {"items": ["y" * 1020]}})
    good = transfer("e-good")

    result = api.post("/api/v1/events", json={"events": [many, large, nested, good]}).json()

    assert result["accepted"] == 1
    assert result["rejected"] == [
        {
            "index": 0,
            "event_id": "e-many",
            "code": "invalid_event",
            "message": "attributes: at most 50 attributes are kept; these are 51",
        },
        {
            "index": 1,
            "event_id": "e-large",
            "code": "invalid_event",
            "message": "attributes: the value of 'note' may hold at most 1024 bytes; it has 1025",
        },
        {
            "index": 2,
            "event_id": "e-nested",
            "code": "invalid_event",
            "message": "attributes: the value of 'cart' may hold at most 1024 bytes; it has 1034",
        },
    ]
    assert [row[1] for row in database_rows(runtime)["events"]] == ["e-good"]


# -- rule trees --------------------------------------------------------------------------------


def _conditions(count: int) -> list[dict[str, Any]]:
    return [{"field": "event.amount", "op": "gte", "value": n} for n in range(count)]


def test_a_rule_tree_of_as_many_nodes_as_allowed_is_accepted(api: TestClient, existing: Rows) -> None:
    audience = {"any": _conditions(199)}  # 199 conditions and their group

    response = api.post("/api/v1/strategies", json=strategy_body("at-the-limit", audience=audience))

    assert response.status_code == 201, response.text
    assert response.json()["audience"] == audience


@pytest.mark.parametrize("count", [200, 5_000])
def test_a_rule_tree_over_the_node_limit_is_refused_and_not_stored(
    api: TestClient, runtime: Runtime, existing: Rows, count: int
) -> None:
    response = api.post("/api/v1/strategies", json=strategy_body("too-big", audience={"any": _conditions(count)}))

    assert_error(
        response,
        422,
        "limit_exceeded",
        "audience",
        f"audience: a rule tree may hold at most 200 conditions and groups in all; this one has {count + 1}.",
    )
    assert database_rows(runtime) == existing


def test_an_in_list_at_the_limit_is_accepted(api: TestClient, existing: Rows) -> None:
    audience = {"all": [CONDITION, {"field": "customer.attributes.tier", "op": "in", "value": list(range(500))}]}

    response = api.post("/api/v1/strategies", json=strategy_body("long-list", audience=audience))

    assert response.status_code == 201, response.text


@pytest.mark.parametrize("op", ["in", "not_in", "contains"])
def test_a_value_list_over_the_limit_is_refused_naming_where(
    api: TestClient, runtime: Runtime, existing: Rows, op: str
) -> None:
    long_list = {"field": "customer.attributes.tier", "op": op, "value": [f"t{n}" for n in range(501)]}
    audience = {"all": [CONDITION, {"not": long_list}]}

    response = api.post("/api/v1/strategies", json=strategy_body("too-long", audience=audience))

    assert_error(
        response,
        422,
        "limit_exceeded",
        "audience.all.1.not.value",
        "audience.all.1.not.value: a list of values may hold at most 500 items; this one has 501.",
    )
    assert database_rows(runtime) == existing


def test_a_rule_value_longer_than_any_attribute_is_refused(api: TestClient, runtime: Runtime, existing: Rows) -> None:
    at_limit = {"field": "customer.attributes.tier", "op": "in", "value": ["x" * 1024]}
    over = {"field": "customer.attributes.tier", "op": "in", "value": ["x" * 1024, "x" * 1025]}

    accepted = api.post("/api/v1/strategies", json=strategy_body("fits", audience=at_limit))
    assert accepted.status_code == 201, accepted.text
    existing = database_rows(runtime)
    response = api.post("/api/v1/strategies", json=strategy_body("does-not-fit", audience=over))

    assert_error(
        response,
        422,
        "limit_exceeded",
        "audience.value",
        "audience.value: a value may hold at most 1024 bytes, as an attribute value may; this one has 1025.",
    )
    assert database_rows(runtime) == existing


def test_the_node_count_includes_every_group_and_condition() -> None:
    tree = Rule.model_validate({"root": {"all": [CONDITION, {"not": {"any": [CONDITION, CONDITION]}}]}}).root

    check_size(tree, max_nodes=6, max_list_items=1, max_value_bytes=8)
    with pytest.raises(RuleTooLarge) as refused:
        check_size(tree, max_nodes=5, max_list_items=1, max_value_bytes=8)

    assert (refused.value.path, refused.value.message) == (
        "",
        "a rule tree may hold at most 5 conditions and groups in all; this one has 6",
    )


# -- titles, labels, prompts, names --------------------------------------------------------------


def _question_with_options(label: str) -> dict[str, Any]:
    return {
        "id": "why",
        "type": "choice",
        "required": False,
        "prompt": {"en": "Why?"},
        "options": [{"id": "a", "label": {"en": label}}, {"id": "b", "label": {"en": "B"}}],
    }


def _with_prompt(prompt: str) -> list[dict[str, Any]]:
    questions = survey_body()["questions"]
    return [{**questions[0], "prompt": {"en": prompt}}, *questions[1:]]


@pytest.mark.parametrize(
    "overrides",
    [
        {"title": {"en": "t" * 200}},
        {"title": {"zh-CN": "支" * 200}},  # characters, not bytes
        {"questions": _with_prompt("p" * 1000)},
        {"questions": _with_prompt("First line.\nSecond line.")},
        {"questions": [*survey_body()["questions"], _question_with_options("l" * 200)]},
    ],
)
def test_survey_texts_at_their_limits_are_accepted(api: TestClient, overrides: dict[str, Any]) -> None:
    response = api.post("/api/v1/surveys", json=survey_body("at-the-limit", **overrides))

    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"title": {"en": "t" * 201}}, "title.en", "title.en: may hold at most 200 characters; this one has 201."),
        (
            {"title": {"zh-CN": "支" * 201, "en": "Fine"}},
            "title.zh-CN",
            "title.zh-CN: may hold at most 200 characters; this one has 201.",
        ),
        (
            {"questions": _with_prompt("p" * 1001)},
            "questions.0.prompt.en",
            "questions.0.prompt.en: may hold at most 1000 characters; this one has 1001.",
        ),
        (
            {"questions": [*survey_body()["questions"], _question_with_options("l" * 201)]},
            "questions.3.options.0.label.en",
            "questions.3.options.0.label.en: may hold at most 200 characters; this one has 201.",
        ),
    ],
)
def test_survey_texts_over_their_limits_are_refused_and_not_stored(
    api: TestClient, runtime: Runtime, existing: Rows, *, overrides: dict[str, Any], field: str, message: str
) -> None:
    response = api.post("/api/v1/surveys", json=survey_body("too-long", **overrides))

    assert_error(response, 422, "limit_exceeded", field, message)
    assert database_rows(runtime) == existing


CONTROL_CHARACTERS = [
    ("\n", "U+000A"),
    ("\r", "U+000D"),
    ("\t", "U+0009"),
    ("\x1b", "U+001B"),
    ("\x7f", "U+007F"),
    ("\x85", "U+0085"),  # NEL, a C1 control
    ("\u2028", "U+2028"),
    ("\u2029", "U+2029"),
]
ONE_LINE = "(one line, no control character)"
# Characters no request body may hold at all: the input guard refuses them before any service.
REFUSED_AT_THE_DOOR = {"\x1b", "\x7f", "\x85"}


def assert_refused(response: Any, character: str, field: str, message: str) -> None:
    if character in REFUSED_AT_THE_DOOR:
        assert_error(response, 400, "invalid_character", None)
    else:
        assert_error(response, 422, "invalid_character", field, message)


@pytest.mark.parametrize(("character", "named"), CONTROL_CHARACTERS)
def test_a_survey_title_with_a_control_character_is_refused_and_not_stored(
    api: TestClient, runtime: Runtime, existing: Rows, character: str, named: str
) -> None:
    response = api.post("/api/v1/surveys", json=survey_body("poison", title={"en": f"T{character}Bcc: x@y"}))

    assert_refused(response, character, "title.en", f"title.en: contains the control character {named} {ONE_LINE}.")
    assert database_rows(runtime) == existing


@pytest.mark.parametrize(("character", "named"), CONTROL_CHARACTERS[:3])
def test_choice_labels_and_strategy_names_are_one_line_too(
    api: TestClient, runtime: Runtime, existing: Rows, character: str, named: str
) -> None:
    questions = [*survey_body()["questions"], _question_with_options(f"A{character}B")]
    label = api.post("/api/v1/surveys", json=survey_body("poison", questions=questions))
    name = api.post("/api/v1/strategies", json=strategy_body("poison", name=f"Big{character}transfers"))

    assert_error(
        label,
        422,
        "invalid_character",
        "questions.3.options.0.label.en",
        f"questions.3.options.0.label.en: contains the control character {named} {ONE_LINE}.",
    )
    assert_error(name, 422, "invalid_character", "name", f"name: contains the control character {named} {ONE_LINE}.")
    assert database_rows(runtime) == existing


@pytest.mark.parametrize(("character", "named"), [c for c in CONTROL_CHARACTERS if c[0] != "\n"])
def test_a_prompt_keeps_line_breaks_but_no_other_control_character(
    api: TestClient, runtime: Runtime, existing: Rows, character: str, named: str
) -> None:
    response = api.post("/api/v1/surveys", json=survey_body("poison", questions=_with_prompt(f"One\n{character}two")))

    assert_refused(
        response,
        character,
        "questions.0.prompt.en",
        f"questions.0.prompt.en: contains the control character {named} "
        "(line breaks are allowed, no other control character).",
    )
    assert database_rows(runtime) == existing


def test_a_strategy_name_at_the_limit_is_accepted_and_one_over_refused(
    api: TestClient, runtime: Runtime, existing: Rows
) -> None:
    accepted = api.post("/api/v1/strategies", json=strategy_body("named", name="n" * 200))
    assert accepted.status_code == 201, accepted.text
    existing = database_rows(runtime)

    refused = api.post("/api/v1/strategies", json=strategy_body("too-long", name="n" * 201))

    assert_error(refused, 422, "limit_exceeded", "name", "name: may hold at most 200 characters; this one has 201.")
    assert database_rows(runtime) == existing


# -- the limits are the operator's -------------------------------------------------------------


@pytest.fixture
def tight_api(settings: Settings, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The app of an operator who set every limit low in the environment."""
    for name, value in {
        "FOLLOWUP_MAX_ATTRIBUTES": "2",
        "FOLLOWUP_MAX_ATTRIBUTE_BYTES": "16",
        "FOLLOWUP_MAX_RULE_NODES": "3",
        "FOLLOWUP_MAX_RULE_LIST_ITEMS": "2",
        "FOLLOWUP_MAX_TITLE_CHARS": "10",
        "FOLLOWUP_MAX_PROMPT_CHARS": "20",
    }.items():
        monkeypatch.setenv(name, value)
    fields = settings.model_dump(exclude={name for name in Settings.model_fields if name.startswith("max_")})
    runtime = build_runtime(Settings(_env_file=None, **fields), clock=clock)  # type: ignore[call-arg]
    with runtime.session() as session:
        _, key = staff.create_api_key(session, name="tests", now=clock.now())
    try:
        with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {key}"}) as client:
            yield client
    finally:
        wipe(runtime.engine)
        runtime.close()


def test_each_limit_follows_its_setting(tight_api: TestClient) -> None:
    customer = tight_api.put("/api/v1/customers/c1", json={"attributes": {"a": 1, "b": 2, "c": 3}})
    value = tight_api.put("/api/v1/customers/c1", json={"attributes": {"a": "x" * 17}})
    title = tight_api.post("/api/v1/surveys", json=survey_body(title={"en": "t" * 11}))
    prompt = tight_api.post("/api/v1/surveys", json=survey_body(title={"en": "T"}, questions=_with_prompt("p" * 21)))
    fitting = tight_api.post(
        "/api/v1/surveys", json=survey_body(title={"en": "t" * 10}, questions=_with_prompt("p" * 20)[:1])
    )
    nodes = tight_api.post("/api/v1/strategies", json=strategy_body(audience={"any": _conditions(3)}))
    items = tight_api.post(
        "/api/v1/strategies",
        json=strategy_body(audience={"field": "customer.attributes.tier", "op": "in", "value": [1, 2, 3]}),
    )
    event = tight_api.post("/api/v1/events", json={"events": [transfer(attributes={"a": 1, "b": 2, "c": 3})]})

    assert_error(
        customer, 422, "limit_exceeded", "attributes", "attributes: at most 2 attributes are kept; these are 3."
    )
    assert_error(value, 422, "limit_exceeded", "attributes.a")
    assert_error(title, 422, "limit_exceeded", "title.en")
    assert_error(prompt, 422, "limit_exceeded", "questions.0.prompt.en")
    assert fitting.status_code == 201, fitting.text
    assert_error(nodes, 422, "limit_exceeded", "audience")
    assert_error(items, 422, "limit_exceeded", "audience.value")
    assert event.json()["rejected"][0]["message"] == "attributes: at most 2 attributes are kept; these are 3"


def test_a_limit_setting_out_of_range_stops_start_up() -> None:
    with pytest.raises(ValidationError, match="max_rule_nodes"):
        Settings(_env_file=None, max_rule_nodes=0)  # type: ignore[call-arg]


@pytest.mark.parametrize(("name", "value"), [("smtp_from", "a@b.c\nBcc: x@y"), ("public_url", "http://x/\r\nX: y")])
def test_settings_that_reach_email_headers_refuse_line_breaks(name: str, value: str) -> None:
    with pytest.raises(ValidationError, match="must be one line without control characters"):
        Settings(_env_file=None, **{name: value})  # type: ignore[call-arg]


# -- what was stored before the limits still reads -----------------------------------------------


def test_data_stored_under_looser_limits_still_reads_and_runs(
    api: TestClient, runtime: Runtime, clock: ManualClock
) -> None:
    # Given a strategy and a survey stored before these limits existed: 300 conditions, a list of
    # 600 values, a 300-character name and a title with a line break
    make_customer(runtime, "c1")
    make_survey(runtime)
    loose = InputLimits(
        max_rule_nodes=10_000, max_rule_list_items=10_000, max_title_chars=1000, max_attribute_bytes=65536
    )
    audience = {
        "all": [
            {"field": "event.amount", "op": "gte", "value": 500000},
            {"field": "customer.attributes.tier", "op": "in", "value": ["gold", *(f"t{n}" for n in range(599))]},
            {"any": _conditions(298)},
        ]
    }
    with runtime.session() as session:
        strategies.create_strategy(
            session,
            StrategyCreate.model_validate(strategy_body(name="n" * 300, audience=audience, channels=["inapp"])),
            available_channels=set(runtime.channels),
            limits=loose,
            actor=SYSTEM,
            now=runtime.clock.now(),
        )
        session.execute(update(SurveyVersion).values(title={"en": "Old\ntitle", "zh-CN": "旧\n标题"}))

    # When they are read through the API
    listed = api.get("/api/v1/strategies")
    one = api.get("/api/v1/strategies/after-large-transfer")
    survey = api.get("/api/v1/surveys/payment-csat")

    # Then they read back as stored
    assert listed.status_code == 200, listed.text
    assert listed.json()["items"][0]["audience"] == audience
    assert one.status_code == 200, one.text
    assert one.json()["name"] == "n" * 300
    assert survey.status_code == 200, survey.text
    assert survey.json()["title"] == {"zh-CN": "旧\n标题", "en": "Old\ntitle"}

    # And the strategy still plans a follow-up for a matching event, which reaches the inbox
    assert api.post("/api/v1/events", json={"events": [transfer()]}).json()["accepted"] == 1
    clock.advance(dt.timedelta(hours=1))
    Worker(runtime).run_until_idle()
    [item] = api.get("/api/v1/customers/c1/inbox").json()
    assert item["title"] == "邀请您评价：旧\n标题"
