"""The demo's people in the loop: two agents who work the call queue of the top-tier strategy and
the cases of their queues on weekdays in Shanghai office hours, a supervisor, an analyst and an
auditor; and the risk team's webhook endpoint (`risk_desk`), registered for security concerns.

Everything goes through the same services the console and the API call."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from followup.calls import service as calls
from followup.calls.schemas import CallOutcomeIn
from followup.cases import service as cases
from followup.cases.schemas import CaseResolve
from followup.customers import service as customers
from followup.demo.risk_desk import RiskDesk
from followup.followups import call_work, casework
from followup.kernel.actors import Actor
from followup.kernel.errors import FollowupError
from followup.kernel.time import ManualClock
from followup.runtime import Runtime
from followup.staff import service as staff
from followup.webhooks import service as webhooks
from followup.webhooks.schemas import WebhookCreate

# (email, role, queues): the logins the demo prints, one per role.
DEMO_STAFF: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("li.na@wallet.example", "agent", ("calls", "detractor", "complaint")),
    ("zhou.qiang@wallet.example", "agent", ("calls", "detractor", "security")),
    ("wang.fang@wallet.example", "admin", ("calls", "detractor", "security")),  # the queues' supervisor
    ("chen.jie@wallet.example", "analyst", ()),
    ("audit@wallet.example", "auditor", ()),
)
OFFICE = ZoneInfo("Asia/Shanghai")
CALLS_PER_AGENT_HOUR = 4
CASE_HOURS = (10, 16)  # when the agents go through their cases
# What a call comes to, by chance (the rest: no answer).
CALL_CHANCES = (("answered", 0.55), ("busy", 0.1), ("refused", 0.04), ("wrong_number", 0.02), ("do_not_call", 0.01))
RESURVEY_YES = 0.8
# A security case waits for the risk team's checks before it is resolved; until then it holds the
# customer's feedback follow-ups.
SECURITY_CHECKS = dt.timedelta(days=2)
REPLIES = {
    "zh-CN": "您好，感谢您的反馈。我们已经核实并处理了您遇到的问题，如有需要可随时联系我们。",
    "en": "Hello, thank you for telling us. We have looked into what happened and put it right; write back any time.",
}
RESOLUTIONS = {
    "security": ("fixed", "account accessed from a new device", "sessions ended, password reset, card re-issued"),
    "detractor": ("explained", "fee and arrival times were unclear", "explained the fee and the arrival times"),
    "complaint": ("refunded", "merchant charged twice", "refunded the second charge"),
}


@dataclass
class PeopleStats:
    calls: dict[str, int] = field(default_factory=dict)
    replies: int = 0
    resolved: int = 0
    resurvey_yes: int = 0
    resurvey_no: int = 0
    resurvey_csat: list[int] = field(default_factory=list)


class Staffroom:
    def __init__(self, runtime: Runtime, clock: ManualClock, *, seed: int) -> None:
        self.runtime = runtime
        self.clock = clock
        self.seed = seed
        self.stats = PeopleStats()
        self.desk = RiskDesk()
        self.agents: list[Actor] = []

    def set_up(self) -> None:
        """The staff accounts (their passwords are made when the demo serves), and the risk team's
        webhook endpoint for security concerns."""
        runtime, now = self.runtime, self.clock.now()
        self.desk.start()
        with runtime.session() as session:
            for email, role, queues in DEMO_STAFF:
                member, _ = staff.create_staff(session, email=email, role=role, now=now, queues=queues)
                if role == "agent":
                    actor = Actor(kind="staff", id=email, label=email, role=role, queues=queues, staff_id=member.id)
                    self.agents.append(actor)
            _, secret = webhooks.create_endpoint(
                session,
                WebhookCreate(url=self.desk.url, events=["security.concern"], description="Risk team (demo)"),
                keys=runtime.keys,
                now=now,
                allow_private=True,
            )
        self.desk.secret = secret

    def close(self) -> None:
        self.desk.close()

    def work(self, now: dt.datetime, score: Callable[[random.Random, int], int]) -> None:
        """An office hour: calls every hour, cases twice a day; nothing at the weekend or at night."""
        local = now.astimezone(OFFICE)
        if local.weekday() >= 5 or not 9 <= local.hour < 19:
            return
        for agent in self.agents:
            self._call(agent, now, score)
        if local.hour in CASE_HOURS:
            for agent in self.agents:
                self._work_cases(agent, now)

    def _call(self, agent: Actor, now: dt.datetime, score: Callable[[random.Random, int], int]) -> None:
        runtime = self.runtime
        for _ in range(CALLS_PER_AGENT_HOUR):
            with runtime.session() as session:
                call = call_work.claim(session, agent, settings=runtime.settings, keys=runtime.keys, now=now)
                if call is None:
                    return
                rng = random.Random(f"{self.seed}|call|{call.id}|{call.attempts}")  # noqa: S311 - a simulation
                outcome, roll = "no_answer", rng.random()
                for name, chance in CALL_CHANCES:
                    if roll < chance:
                        outcome = name
                        break
                    roll -= chance
                answers = {"nps": score(rng, call.id)} if outcome == "answered" else None
                task = calls.access_task(session, call.id, agent, lock=True)
                try:
                    with session.begin_nested():
                        call_work.record_outcome(
                            session,
                            task,
                            CallOutcomeIn(outcome=outcome, answers=answers),
                            actor=agent,
                            settings=runtime.settings,
                            keys=runtime.keys,
                            now=now,
                        )
                except FollowupError:
                    outcome = "not recorded"
            self.stats.calls[outcome] = self.stats.calls.get(outcome, 0) + 1

    def _work_cases(self, agent: Actor, now: dt.datetime) -> None:
        """Each case of theirs still open: a reply to the customer, then the resolution (which asks
        the customer "did we solve it?")."""
        runtime = self.runtime
        for status in ("assigned", "reopened", "waiting"):
            with runtime.read_session() as session:
                mine, _ = cases.list_cases(
                    session,
                    status=status,
                    priority=None,
                    customer_id=None,
                    limit=50,
                    offset=0,
                    actor=agent,
                    assignee=agent.id,
                    now=now,
                )
            for listed in mine:
                with runtime.session() as session:
                    case = cases.access_case_for(session, listed.id, agent, lock=True)
                    try:
                        with session.begin_nested():
                            if case.status != "waiting":
                                locale = "zh-CN" if _chinese(session, case) else "en"
                                casework.reply(
                                    session,
                                    case,
                                    REPLIES[locale],
                                    actor=agent,
                                    settings=runtime.settings,
                                    keys=runtime.keys,
                                    now=now,
                                )
                                self.stats.replies += 1
                            if case.kind == "security" and now - case.opened_at < SECURITY_CHECKS:
                                continue
                            code, cause, action = RESOLUTIONS[case.kind]
                            casework.resolve(
                                session,
                                case,
                                CaseResolve(code=code, root_cause=cause, action=action),
                                actor=agent,
                                settings=runtime.settings,
                                keys=runtime.keys,
                                now=now,
                            )
                            self.stats.resolved += 1
                    except FollowupError:
                        continue

    def answer_resurvey(self, token: str, *, at: dt.datetime, rng: random.Random, mood: float) -> None:
        """The customer answers "did we solve it?": yes mostly (and a CSAT), else no."""
        with self.runtime.session() as session:
            try:
                case = cases.open_resurvey(session, token)
            except cases.ResurveyInvalid:
                return
            solved = rng.random() < RESURVEY_YES * (0.8 + 0.4 * mood)
            cases.answer_resurvey(session, case, solved=solved, now=at)
            if solved:
                csat = min(5, max(1, round(rng.gauss(3.4 + 1.6 * mood, 0.7))))
                cases.rate_resolution(session, case, csat, now=at)
                self.stats.resurvey_yes += 1
                self.stats.resurvey_csat.append(csat)
            else:
                self.stats.resurvey_no += 1


def _chinese(session: Session, case: cases.CaseRow) -> bool:
    customer = customers.get_by_id(session, case.customer_id)
    return customer is not None and customer.locale == "zh-CN"
