"""Every table, imported in one place so Alembic and the tests see the whole schema."""

from __future__ import annotations

from followup.calls.models import CallOutcome, CallTask
from followup.cases.models import Case, CaseEvent
from followup.channels.models import InboxItem, ProviderState, RateLimit, ShortLink
from followup.customers.models import ContactPoint, Customer, CustomerKey, KeyCheck, Tombstone
from followup.data_rights.models import DataRequest, RetentionPart
from followup.dispatch.models import InboundMessage, Message, MessageAttempt
from followup.events.models import Event
from followup.followups.models import Followup, FollowupHistory
from followup.kernel.db import Base
from followup.kernel.jobs import Job
from followup.policy.models import ContactReservation
from followup.privacy.models import AuditChainHead, AuditEntry, Consent, ConsentRecord, PrivacyNotice, UnsubscribeLink
from followup.rewards.models import RewardAccount, RewardEntry
from followup.staff.models import ApiKey, ConsoleSession, SignInThrottle, StaffMember
from followup.strategies.models import Segment, Strategy, StrategyVersion, Wave
from followup.surveys.models import InterviewBooking, Invitation, Response, Survey, SurveyVersion
from followup.webhooks.models import WebhookDelivery, WebhookEndpoint

metadata = Base.metadata

__all__ = [
    "ApiKey",
    "AuditChainHead",
    "AuditEntry",
    "CallOutcome",
    "CallTask",
    "Case",
    "CaseEvent",
    "Consent",
    "ConsentRecord",
    "ConsoleSession",
    "ContactPoint",
    "ContactReservation",
    "Customer",
    "CustomerKey",
    "DataRequest",
    "Event",
    "Followup",
    "FollowupHistory",
    "InboundMessage",
    "InboxItem",
    "InterviewBooking",
    "Invitation",
    "Job",
    "KeyCheck",
    "Message",
    "MessageAttempt",
    "PrivacyNotice",
    "ProviderState",
    "RateLimit",
    "Response",
    "RetentionPart",
    "RewardAccount",
    "RewardEntry",
    "Segment",
    "ShortLink",
    "SignInThrottle",
    "StaffMember",
    "Strategy",
    "StrategyVersion",
    "Survey",
    "SurveyVersion",
    "Tombstone",
    "UnsubscribeLink",
    "Wave",
    "WebhookDelivery",
    "WebhookEndpoint",
    "metadata",
]
