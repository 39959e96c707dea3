"""The contact policy: one gate, asked when planning and again right before sending.

Planning checks, in order: an open security case, a channel that is both reachable and consented,
the strategy's recontact window (`duplicate`), and the fatigue budget across all strategies and
channels. Quiet hours never refuse; they defer to the first minute after the window. A security
check ("Was this you?") is asked as `service`: no holdout, open case, fatigue budget or quiet
hours hold it back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from followup.cases import service as cases
from followup.channels import capabilities
from followup.config import Settings
from followup.customers import service as customers
from followup.customers.schemas import CustomerSnapshot
from followup.policy.enums import DeferralReason, RefusalReason
from followup.policy.quiet_hours import quiet_until
from followup.policy.repository import ContactLedger, ledger_join_sql, refusal_case_sql
from followup.policy.schemas import Decision, PlanningRequest
from followup.privacy import service as privacy
from followup.privacy.enums import GIVEN_BY_DEFAULT

PURPOSE = "feedback"
SERVICE = "service"


def reachable(snapshot: CustomerSnapshot, channel: str) -> bool:
    """Whether the channel can reach the customer: they hold the kind of contact point it sends to
    (a channel needing none, as the in-app inbox, reaches everyone); never a channel unknown here."""
    found = capabilities.lookup(channel)
    if found is None:
        return False
    return found.address is None or snapshot.has_contact(found.address)


def choose_channel(
    snapshot: CustomerSnapshot, consents: Mapping[str, bool], channels: Sequence[str]
) -> tuple[str | None, RefusalReason | None]:
    """The first channel both reachable and consented, else the reason none is."""
    any_reachable = False
    for channel in channels:
        if not reachable(snapshot, channel):
            continue
        any_reachable = True
        if consents.get(channel) is True:
            return channel, None
    return None, (RefusalReason.NO_CONSENT if any_reachable else RefusalReason.UNREACHABLE)


def allowed_channels(
    snapshot: CustomerSnapshot, consents: Mapping[str, bool], channels: Sequence[str]
) -> tuple[str, ...]:
    """Every channel both reachable and consented, in the given order."""
    return tuple(channel for channel in channels if reachable(snapshot, channel) and consents.get(channel) is True)


def in_global_holdout(customer_external_id: str, percent: float) -> bool:
    """Whether the customer is in the global holdout: sha256("global-holdout|<customer id>"), its
    first 8 bytes as a big-endian integer over 2^64, below percent / 100. Sticky: the same
    customers at any time, in any process, and a larger percent only adds customers to the slice."""
    if percent <= 0:
        return False
    digest = hashlib.sha256(f"global-holdout|{customer_external_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100 < percent


def defer_for_quiet_hours(at: dt.datetime, *, time_zone: str, settings: Settings) -> dt.datetime | None:
    start, end = settings.quiet_hours
    return quiet_until(at, time_zone=time_zone, start=start, end=end)


def check_planning(
    session: Session,
    requests: Sequence[PlanningRequest],
    *,
    now: dt.datetime,
    settings: Settings,
    snapshots: Mapping[int, CustomerSnapshot] | None = None,
) -> list[Decision]:
    """Decide a batch at once: bulk reads, then an in-memory pass that also counts the batch's own
    allowed plans, so two strategies firing in one batch cannot both spend the last of a budget.

    `snapshots` may hand over the customers' snapshots the caller read in this transaction."""
    if not requests:
        return []
    ids = {request.customer_id for request in requests}
    snapshot_of = snapshots if snapshots is not None else customers.snapshots(session, ids)
    consent_of = privacy.consents_for(session, ids, purpose=PURPOSE)
    checks = [request for request in requests if request.security_check]
    check_consent_of = (
        _consents(session, [(request.customer_id, request.channels) for request in checks], purpose=SERVICE)
        if checks
        else {}
    )
    blocked = cases.customers_with_open_security_case(session, ids)
    window = dt.timedelta(days=settings.fatigue_window_days)
    longest = max([window] + [dt.timedelta(days=r.recontact_days) for r in requests])
    reserved: dict[int, list[tuple[int, dt.datetime]]] = defaultdict(list)
    ledger = ContactLedger(session)
    # Held until commit, so the budget read here is still the budget when reserve_contacts spends it.
    ledger.lock_budgets(ids)
    for row in ledger.active_since(ids, now - longest):
        reserved[row.customer_id].append((row.strategy_id, row.reserved_at))

    decisions: list[Decision] = []
    for request in requests:
        snapshot = snapshot_of[request.customer_id]
        # A security check is service, not feedback: no holdout, no open case and no fatigue budget
        # hold it back, it reserves none, and it goes out at any hour.
        check = request.security_check
        if not check and in_global_holdout(snapshot.external_id, settings.global_holdout_percent):
            decisions.append(Decision(allowed=False, reason=RefusalReason.GLOBAL_HOLDOUT))
            continue
        if not check and request.customer_id in blocked:
            decisions.append(Decision(allowed=False, reason=RefusalReason.OPEN_SECURITY_CASE))
            continue
        consents = (check_consent_of if check else consent_of).get(request.customer_id, {})
        channel, refusal = choose_channel(snapshot, consents, request.channels)
        if channel is None:
            decisions.append(Decision(allowed=False, reason=refusal))
            continue
        options = allowed_channels(snapshot, consents, request.channels) if request.auto_channel else ()
        history = reserved[request.customer_id]
        recontact_since = now - dt.timedelta(days=request.recontact_days)
        if any(strategy_id == request.strategy_id and at >= recontact_since for strategy_id, at in history):
            decisions.append(Decision(allowed=False, reason=RefusalReason.DUPLICATE))
            continue
        if check:
            decisions.append(Decision(allowed=True, channel=channel, send_at=request.send_at, options=options))
            continue
        if sum(1 for _, at in history if at >= now - window) >= settings.fatigue_max_followups:
            decisions.append(Decision(allowed=False, reason=RefusalReason.FATIGUE))
            continue
        history.append((request.strategy_id, now))
        release = defer_for_quiet_hours(request.send_at, time_zone=snapshot.time_zone, settings=settings)
        decisions.append(
            Decision(
                allowed=True,
                channel=channel,
                send_at=release or request.send_at,
                deferred=DeferralReason.QUIET_HOURS if release else None,
                options=options,
            )
        )
    return decisions


def lock_budgets(session: Session, customer_ids: Iterable[int]) -> None:
    """Hold these customers' contact budgets until commit (see ContactLedger.lock_budgets)."""
    ContactLedger(session).lock_budgets(customer_ids)


def refusal_sql(
    session: Session,
    *,
    customer: str,
    alias: str,
    customers_sql: str,
    channels: Sequence[str],
    strategy_id: int,
    recontact_days: int,
    now: dt.datetime,
    settings: Settings,
    db_time: Callable[[dt.datetime], Any],
) -> tuple[str, str, dict[str, Any]]:
    """`check_planning`'s refusals in SQL, over a customer id column (`customers_sql` selects the
    ids of all of them), joining the customer's row as `alias` when a channel needs an address: the
    joins to add to the FROM,
    the expression giving the reason (NULL when the policy allows the follow-up), and the
    parameters it binds (times in the database's form, by `db_time`). In the same order: an open
    security case, no channel both reachable and consented, this strategy within its recontact
    days, the fatigue budget spent. The caller holds the budgets' locks (`lock_budgets`). For a
    batch in which each customer appears once, so that the batch's own plans never compete for
    one budget."""
    joins = [cases.open_security_case_join("policy_case", customer)]
    reachable: list[str] = []
    allowed: list[str] = []
    for index, channel in enumerate(channels):
        reach = _reach_sql(alias, channel)
        if reach == "FALSE":
            continue
        consent = f"policy_consent{index}"
        joins.append(privacy.consent_join(session, consent, customer, purpose=PURPOSE, channel=channel))
        reachable.append(reach)
        # COALESCE: a customer with no consent row (never asked, or a grant that no longer counts)
        # joins NULL, and NOT (NULL) would refuse nothing.
        allowed.append(f"({reach} AND COALESCE({consent}.granted, FALSE) = TRUE)")
    joins.append(ledger_join_sql("policy_ledger", customer, customers_sql))
    if any(reach != "TRUE" for reach in reachable):  # an address is read from the customer's row
        joins.insert(0, customers.customer_join(alias, customer))
    sql = refusal_case_sql(
        case="policy_case.customer_id IS NOT NULL",
        allowed=" OR ".join(allowed) or "FALSE",
        reachable=" OR ".join(reachable) or "FALSE",
        ledger="policy_ledger",
    )
    recontact_since = now - dt.timedelta(days=recontact_days)
    window_since = now - dt.timedelta(days=settings.fatigue_window_days)
    params = {
        "policy_strategy": strategy_id,
        "policy_recontact_since": db_time(recontact_since),
        "policy_window_since": db_time(window_since),
        "policy_since": db_time(min(recontact_since, window_since)),
        "policy_budget": settings.fatigue_max_followups,
    }
    return " ".join(joins), sql, params


def _reach_sql(alias: str, channel: str) -> str:
    """`reachable` in SQL over the customer row `alias`."""
    found = capabilities.lookup(channel)
    if found is None:
        return "FALSE"
    return "TRUE" if found.address is None else customers.has_address_sql(alias, found.address)


def reserve_contacts_from(session: Session, select_sql: str, params: Mapping[str, Any]) -> int:
    """Spend budget for the follow-ups a query selects as (customer_id, strategy_id, followup_id,
    reserved_at): planning in the database writes its reservations in one statement. Returns how
    many follow-ups it reserved for."""
    return ContactLedger(session).reserve_from(select_sql, params)


def reserve_contacts(session: Session, rows: Sequence[tuple[int, int, int]], *, now: dt.datetime) -> None:
    """Spend budget for planned follow-ups: (customer_id, strategy_id, followup_id)."""
    ContactLedger(session).reserve(
        [(customer_id, strategy_id, followup_id, now) for customer_id, strategy_id, followup_id in rows]
    )


def release_contact(session: Session, followup_id: int, *, now: dt.datetime) -> None:
    """Give the budget back: the follow-up was refused before anything reached the customer."""
    ContactLedger(session).release(followup_id, now)


def record_contact(session: Session, followup_id: int, *, channel: str, now: dt.datetime) -> None:
    ContactLedger(session).mark_contacted(followup_id, channel, now)


def record_contacts(session: Session, contacted: Sequence[tuple[int, str, dt.datetime]]) -> None:
    """`record_contact` for many (follow-up, channel, when) in one statement."""
    ContactLedger(session).mark_many_contacted(contacted)


def check_channel(
    session: Session,
    customer_id: int,
    channels: Sequence[str],
    *,
    now: dt.datetime,
    settings: Settings,
    purpose: str = PURPOSE,
    at_any_hour: bool = False,
) -> Decision:
    """The send-time gate for one customer: security case, channel, quiet hours.

    Consent may have been withdrawn since planning, so it is read again here, right before a send.
    The fatigue budget was spent at planning and is not counted twice.
    """
    return check_channels(
        session, [(customer_id, channels)], now=now, settings=settings, purpose=purpose, at_any_hour=at_any_hour
    )[0]


def check_channels(
    session: Session,
    asks: Sequence[tuple[int, Sequence[str]]],
    *,
    now: dt.datetime,
    settings: Settings,
    purpose: str = PURPOSE,
    at_any_hour: bool = False,
) -> list[Decision]:
    """`check_channel` for many (customer, channels) at once, in a few queries; one decision per
    ask, in order.

    A `service` message (a reply about the customer's own case, a security check) is not feedback:
    no holdout and no open security case holds it back, and its consent is given until the
    customer withdraws it. Quiet hours hold for it all the same, unless `at_any_hour` (a security
    check)."""
    ids = {customer_id for customer_id, _ in asks}
    snapshots = customers.snapshots(session, ids)
    service = purpose == SERVICE
    secured = set() if service else cases.customers_with_open_security_case(session, ids)
    consents = _consents(session, asks, purpose=purpose)
    return [
        _decide(
            snapshots.get(customer_id),
            channels,
            secured,
            consents,
            now=now,
            settings=settings,
            service=service,
            at_any_hour=at_any_hour,
        )
        for customer_id, channels in asks
    ]


def _consents(
    session: Session, asks: Sequence[tuple[int, Sequence[str]]], *, purpose: str
) -> dict[int, dict[str, bool]]:
    """Each customer's consents for `purpose` by channel; for a purpose given by default, every
    channel asked about that the customer has not withdrawn counts as given."""
    ids = {customer_id for customer_id, _ in asks}
    consents = privacy.consents_for(session, ids, purpose=purpose)
    if purpose not in GIVEN_BY_DEFAULT:
        return {cid: dict(found) for cid, found in consents.items()}
    asked = {channel for _, channels in asks for channel in channels}
    return {cid: {channel: consents.get(cid, {}).get(channel, True) for channel in asked} for cid in ids}


def _decide(
    snapshot: CustomerSnapshot | None,
    channels: Sequence[str],
    secured: set[int],
    consents: Mapping[int, Mapping[str, bool]],
    *,
    now: dt.datetime,
    settings: Settings,
    service: bool = False,
    at_any_hour: bool = False,
) -> Decision:
    if snapshot is None:
        return Decision(allowed=False, reason=RefusalReason.UNREACHABLE)
    if not service and in_global_holdout(snapshot.external_id, settings.global_holdout_percent):
        return Decision(allowed=False, reason=RefusalReason.GLOBAL_HOLDOUT)
    if snapshot.id in secured:
        return Decision(allowed=False, reason=RefusalReason.OPEN_SECURITY_CASE)
    channel, refusal = choose_channel(snapshot, consents.get(snapshot.id, {}), channels)
    if channel is None:
        return Decision(allowed=False, reason=refusal)
    release = None if at_any_hour else defer_for_quiet_hours(now, time_zone=snapshot.time_zone, settings=settings)
    if release is not None:
        return Decision(allowed=True, channel=channel, send_at=release, deferred=DeferralReason.QUIET_HOURS)
    return Decision(allowed=True, channel=channel, send_at=now)
