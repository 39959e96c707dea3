from __future__ import annotations

from typing import Any

from followup.runtime import Runtime
from followup.surveys import service
from followup.surveys.models import Survey
from followup.surveys.schemas import SurveyCreate


def survey_body(key: str = "payment-csat", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": key,
        "title": {"zh-CN": "支付体验回访", "en": "Your payment"},
        "questions": [
            {
                "id": "nps",
                "type": "nps",
                "prompt": {"zh-CN": "您有多大可能向朋友推荐我们？", "en": "How likely are you to recommend us?"},
            },
            {
                "id": "csat",
                "type": "csat",
                "required": False,
                "prompt": {"zh-CN": "您对这次支付满意吗？", "en": "How satisfied were you?"},
            },
            {
                "id": "comment",
                "type": "text",
                "required": False,
                "prompt": {"zh-CN": "还有什么想告诉我们？", "en": "Anything else?"},
            },
        ],
    }
    body.update(overrides)
    return body


def make_survey(runtime: Runtime, key: str = "payment-csat", **overrides: Any) -> Survey:
    with runtime.session() as session:
        return service.create_survey(
            session,
            SurveyCreate.model_validate(survey_body(key, **overrides)),
            limits=runtime.settings.input_limits,
            now=runtime.clock.now(),
        )
