"""Customers, their sealed contact points and their data keys."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from followup.config import InputLimits
from followup.customers import contact_points, sealing
from followup.customers.audience_repository import count_by_locale, count_matching, matching_ids, matching_members
from followup.customers.contacts import REACH_BITS, ContactKind, normalize_email
from followup.customers.models import Customer, CustomerActivity
from followup.customers.repository import (
    ActivityRepository,
    CustomerRepository,
    address_present_sql,
    customer_join_sql,
    value_tier_column_sql,
)
from followup.customers.schemas import (
    ACTIVE_DAYS,
    FEATURE_PREFIX,
    WINDOWED_STATS,
    ActivityEvent,
    CustomerOut,
    CustomerSample,
    CustomerSnapshot,
    CustomerStats,
    CustomerUpsert,
    attributes_problem,
    epoch_day,
    feature_of,
    rfc3339,
)
from followup.kernel.actors import Actor
from followup.kernel.crypto import KeyProvider
from followup.kernel.errors import InvalidInput, NotFound
from followup.privacy import service as privacy
from followup.privacy.enums import BUILT_IN_CHANNELS
from followup.rules.tree import Node

# A customer's row, as other domains name it in their signatures (they never import the model).
CustomerRow = Customer

# Other modules seal their customer data (answers, messages) under the customer's key through here.
seal_for_customer = sealing.seal_for_customer
open_for_customer = sealing.open_for_customer
# Contact points: read at send time, marked by providers' word, found by an inbound number.
usable_contact = contact_points.usable_contact
usable_contacts = contact_points.usable_contacts
_HELD = "followup.customers_held"  # session.info: customers a batch loaded, kept for the session
mark_contact = contact_points.mark_contact
mark_contact_by_value = contact_points.mark_by_value
customer_by_contact = contact_points.customer_by_contact
contact_points_of = contact_points.points_of
register_device = contact_points.set_device
mask_contact = contact_points.mask_value

DEFAULT_LOCALE = "zh-CN"
DEFAULT_TIME_ZONE = "Asia/Shanghai"


class CustomerNotFound(NotFound):
    code = "customer_not_found"


def get_customer(session: Session, external_id: str) -> Customer | None:
    return CustomerRepository(session).by_external_id(external_id)


def access_customer(session: Session, external_id: str) -> Customer:
    customer = get_customer(session, external_id)
    if customer is None:
        raise CustomerNotFound(f"No customer with id '{external_id}'.", field="customer_id")
    return customer


def upsert_customer(
    session: Session,
    external_id: str,
    data: CustomerUpsert,
    *,
    keys: KeyProvider,
    limits: InputLimits,
    actor: Actor,
    now: dt.datetime,
    built_in_notice_version: str,
    channels: Collection[str] = (),
) -> Customer:
    """Create or change a customer. Consents and the preferred channel may name the built-in
    channels and those installed here (`channels`), and no other."""
    if not external_id or len(external_id) > 128:
        raise InvalidInput("customer_id must be 1 to 128 characters.", field="customer_id")
    _check_channel_names(data, known=set(BUILT_IN_CHANNELS) | set(channels))
    if data.attributes is not None:
        problem = attributes_problem(data.attributes, limits=limits)
        if problem is not None:
            field, sentence = problem
            raise InvalidInput(f"{field}: {sentence}.", code="limit_exceeded", field=field)
    repo = CustomerRepository(session)
    customer = repo.by_external_id(external_id)
    created = customer is None
    if customer is None:
        customer = Customer(
            external_id=external_id,
            locale=data.locale or DEFAULT_LOCALE,
            time_zone=data.time_zone or DEFAULT_TIME_ZONE,
            attributes={},
            event_count=0,
            created_at=now,
            updated_at=now,
        )
        repo.add(customer)
        session.flush()
    given = data.model_fields_set
    before = _audited_fields(customer)
    if data.locale is not None:
        customer.locale = data.locale
    if data.time_zone is not None:
        customer.time_zone = data.time_zone
    if data.attributes is not None:
        customer.attributes = dict(data.attributes)
    if "preferred_channel" in given:
        customer.preferred_channel = data.preferred_channel
    if "value_tier" in given:
        customer.value_tier = data.value_tier
    contacts_old: dict[str, str] = {}
    contacts_new: dict[str, str] = {}
    for kind, name in ((ContactKind.EMAIL, "email"), (ContactKind.PHONE, "phone")):
        if name not in given:
            continue
        value = getattr(data, name)
        had = bool(contact_points.points_of(session, customer.id, kind=kind))
        if contact_points.set_contact(session, customer, kind, value, keys=keys, now=now):
            contacts_old[name] = "present" if had else "absent"
            contacts_new[name] = "removed" if value is None else ("changed" if had else "added")
    customer.updated_at = now
    session.flush()
    if contacts_new or created:
        privacy.record_audit(
            session,
            actor=actor,
            subject_type="customer",
            subject_id=str(customer.id),
            event="customer.created" if created else "customer.contacts_changed",
            now=now,
            old=contacts_old or None,
            new=contacts_new,
        )
    after = _audited_fields(customer)
    changed = sorted(name for name in set(before) | set(after) if after.get(name) != before.get(name))
    if changed and not created:
        privacy.record_audit(
            session,
            actor=actor,
            subject_type="customer",
            subject_id=str(customer.id),
            event="customer.updated",
            now=now,
            old={name: _shown(name, before.get(name)) for name in changed},
            new={name: _shown(name, after.get(name)) for name in changed},
        )
    if data.consents:
        privacy.record_consents(
            session,
            customer.id,
            {
                str(purpose): {str(ch): granted for ch, granted in by_channel.items()}
                for purpose, by_channel in data.consents.items()
            },
            subject_id=external_id,
            source="api",
            built_in_notice_version=built_in_notice_version,
            actor=actor,
            now=now,
        )
    return customer


# Shown in the audit log as they are: codes, not personal text. Every other field (the time zone,
# each attribute) is shown only as "changed".
_SHOWN_AS_IS = frozenset({"locale", "preferred_channel", "value_tier"})


def _audited_fields(customer: Customer) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "locale": customer.locale,
        "time_zone": customer.time_zone,
        "preferred_channel": customer.preferred_channel,
        "value_tier": customer.value_tier,
    }
    attributes = customer.attributes or {}
    fields.update({f"attributes.{key}": value for key, value in attributes.items()})
    return fields


def _shown(name: str, value: Any) -> Any:
    return value if name in _SHOWN_AS_IS else ("absent" if value is None else "changed")


def record_contact_change(
    session: Session, customer: Customer, *, actor: Actor, change: dict[str, str], now: dt.datetime
) -> None:
    """Audit a change of the customer's contact points (what changed, never the value)."""
    customer.updated_at = now
    privacy.record_audit(
        session,
        actor=actor,
        subject_type="customer",
        subject_id=str(customer.id),
        event="customer.contacts_changed",
        now=now,
        new=change,
    )


def _check_channel_names(data: CustomerUpsert, *, known: set[str]) -> None:
    named = [("preferred_channel", data.preferred_channel)] if data.preferred_channel else []
    for purpose, by_channel in (data.consents or {}).items():  # names of a channel's shape: safe to echo
        named.extend((f"consents.{purpose}.{channel}", channel) for channel in by_channel)
    for field, channel in named:
        if channel not in known:
            raise InvalidInput(
                f"{field}: there is no channel '{channel}'; use one of: {', '.join(sorted(known))}.", field=field
            )


def holds_contact(customer: Customer, kind: str) -> bool:
    """Whether the customer holds a valid contact point of this kind (their reach bits)."""
    return bool(customer.reach & REACH_BITS.get(kind, 0))


def contact_address(session: Session, customer: Customer, kind: str, *, keys: KeyProvider) -> str | None:
    """The customer's valid contact point of this kind (a `ContactKind`) in clear, read at send
    time only; None when they hold none."""
    found = contact_points.usable_contact(session, customer.id, kind, keys=keys)
    return None if found is None else found.value


def describe_customer(session: Session, customer: Customer, *, keys: KeyProvider, now: dt.datetime) -> CustomerOut:
    points = contact_points.describe_contacts(session, customer.id, keys=keys)
    kept = {point.kind: point.value for point in points if point.device_id is None}
    return CustomerOut(
        customer_id=customer.external_id,
        email=kept.get(ContactKind.EMAIL),
        phone=kept.get(ContactKind.PHONE),
        contact_points=points,
        locale=customer.locale,
        time_zone=customer.time_zone,
        preferred_channel=customer.preferred_channel,
        value_tier=customer.value_tier,
        attributes=customer.attributes or {},
        consents=privacy.get_consents(session, customer.id),
        event_count=customer.event_count,
        last_event_at=customer.last_event_at,
        stats=CustomerStats.model_validate(activity_stats(session, [customer.id], now=now)[customer.id]),
        created_at=customer.created_at,
        updated_at=customer.updated_at,
    )


def find_by_email(session: Session, email: str, *, keys: KeyProvider) -> Customer | None:
    """Look a customer up by email through the blind index; the address itself is never queried."""
    return CustomerRepository(session).by_contact_index(
        ContactKind.EMAIL, keys.blind_index(ContactKind.EMAIL, normalize_email(email))
    )


def record_arrivals(session: Session, events: Iterable[tuple[str, dt.datetime]], *, now: dt.datetime) -> dict[str, int]:
    """Count arriving events on their customers, creating bare customers (no contact points) for
    unknown ids; returns the internal id of every customer named.

    Events are counted as they arrive, before they are stored; `uncount_events` takes back the ones
    found to be duplicates. A true replay does not move last_event_at, its time was counted when it
    was first stored; one whose time differs from the stored event's (a sender's bug) can move it.
    """
    arrivals: dict[str, tuple[int, dt.datetime]] = {}
    for external_id, occurred_at in events:
        count, latest = arrivals.get(external_id, (0, occurred_at))
        arrivals[external_id] = (count + 1, occurred_at if occurred_at > latest else latest)
    return CustomerRepository(session).record_arrivals(
        [(eid, count, latest) for eid, (count, latest) in arrivals.items()],
        locale=DEFAULT_LOCALE,
        time_zone=DEFAULT_TIME_ZONE,
        now=now,
    )


def uncount_events(session: Session, counts: Mapping[int, int]) -> None:
    if counts:
        CustomerRepository(session).uncount_events(counts)


def snapshots(
    session: Session, customer_ids: Iterable[int], *, stats_at: dt.datetime | None = None
) -> dict[int, CustomerSnapshot]:
    """What planning sees of each customer; with `stats_at`, their activity stats as of that time."""
    ids = list(customer_ids)
    stats = activity_stats(session, ids, now=stats_at) if stats_at is not None else {}
    out: dict[int, CustomerSnapshot] = {}
    for row in CustomerRepository(session).snapshot_rows(ids):
        cid, external_id, locale, time_zone, attributes, reach, event_count, preferred, tier = row
        out[cid] = CustomerSnapshot(
            cid,
            external_id,
            locale,
            time_zone,
            _json(attributes) or {},
            reach or 0,
            event_count,
            preferred,
            tier,
            stats.get(cid),
        )
    return out


def _json(value: Any) -> Any:
    # JSON columns arrive as text from SQLite and already parsed from PostgreSQL.
    return json.loads(value) if isinstance(value, str) else value


def _utc(value: Any) -> dt.datetime | None:
    """A time read by the driver: aware from PostgreSQL, naive ISO text from SQLite."""
    if value is None:
        return None
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
    return value  # type: ignore[no-any-return]


# ── activity ───────────────────────────────────────────────────────────────────────────────────


def record_activity(session: Session, events: Iterable[ActivityEvent]) -> None:
    """Add newly stored events to their customers' day buckets: one upsert for the whole batch.

    A bucket is (customer, UTC day, type, feature); it counts its events, sums their amounts and
    keeps its first and last time, from which every events stat is read."""
    buckets: dict[tuple[int, int, str, str], list[int]] = {}
    for cid, kind, occurred_at, amount, attributes in events:
        second = int(occurred_at.timestamp())  # whole seconds, as stats show them
        feature = feature_of(kind, attributes) if kind.startswith(FEATURE_PREFIX) else ""
        key = (cid, second // 86400, kind, feature)
        bucket = buckets.get(key)
        if bucket is None:
            buckets[key] = [1, amount or 0, second, second]
            continue
        bucket[0] += 1
        if amount:
            bucket[1] += amount
        if second < bucket[2]:
            bucket[2] = second
        elif second > bucket[3]:
            bucket[3] = second
    if buckets:
        rows = [(cid, day, kind, feature, *figures) for (cid, day, kind, feature), figures in buckets.items()]
        ActivityRepository(session).add_buckets(rows)


def _empty_stats() -> dict[str, Any]:
    stats: dict[str, Any] = dict.fromkeys(WINDOWED_STATS, 0)
    stats[ACTIVE_DAYS[0]] = 0
    stats.update(
        first_seen_at=None,
        last_active_at=None,
        tx_types=[],
        features_used=[],
        last_followup_at=None,
        last_nps=None,
        responses_by_channel={},
    )
    return stats


def activity_stats(session: Session, customer_ids: Iterable[int], *, now: dt.datetime) -> dict[int, dict[str, Any]]:
    """Each customer's `customer.stats` as of `now` (CustomerStats, as a dict), in three reads."""
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    repo = ActivityRepository(session)
    out = {cid: _empty_stats() for cid in ids}
    names = [*WINDOWED_STATS, ACTIVE_DAYS[0]]
    today = epoch_day(now.astimezone(dt.UTC).date())
    for cid, *figures, first, last in repo.bucket_sums(ids, today=today, windows=list(WINDOWED_STATS.values())):
        stats = out[cid]
        for name, value in zip(names, figures, strict=True):
            stats[name] = int(value or 0)
        stats["first_seen_at"], stats["last_active_at"] = rfc3339(int(first)), rfc3339(int(last))
    for cid, kind, feature in repo.bucket_keys(ids):
        out[cid]["tx_types"].append(kind)
        if feature:
            out[cid]["features_used"].append(feature)
    for stats in out.values():  # by code point, whatever the database's collation
        stats["tx_types"] = sorted(set(stats["tx_types"]))
        stats["features_used"] = sorted(set(stats["features_used"]))
    for cid, last_followup, last_nps, by_channel in repo.activity_rows(ids):
        out[cid].update(
            last_followup_at=rfc3339(_utc(last_followup)),
            last_nps=last_nps,
            responses_by_channel=dict(sorted((_json(by_channel) or {}).items())),
        )
    return out


def note_followups(session: Session, invited: Iterable[tuple[int, dt.datetime]]) -> None:
    """(customer, when a follow-up invited them): moves customer.stats.last_followup_at forward."""
    rows = list(invited)
    if rows:
        ActivityRepository(session).note_followups(rows)


def note_response(session: Session, customer_id: int, *, channel: str, nps: int | None, at: dt.datetime) -> None:
    """An answer came in: count it for its channel and keep its NPS score as the latest."""
    repo = ActivityRepository(session)
    repo.ensure_activity([customer_id])
    row = repo.activity(customer_id, lock=True)
    assert row is not None  # noqa: S101 - ensured just above
    _add_response(row, channel=channel, nps=nps, at=at)
    session.flush()


def _add_response(row: CustomerActivity, *, channel: str, nps: int | None, at: dt.datetime) -> None:
    counts = dict(row.responses_by_channel or {})
    counts[channel] = int(counts.get(channel, 0)) + 1
    row.responses_by_channel = counts
    if nps is not None and (row.last_nps_at is None or at >= row.last_nps_at):
        row.last_nps, row.last_nps_at = nps, at


def clear_activity(session: Session, *, kept_before: dt.datetime | None = None) -> None:
    """Forget every customer's activity, before `recompute-stats` rebuilds it from the logs; with
    `kept_before` (a UTC midnight), the events' day buckets of earlier days stay as they are."""
    from_day = None if kept_before is None else int(kept_before.timestamp()) // 86400
    ActivityRepository(session).clear(from_day=from_day)
    session.flush()


def replay_responses(session: Session, responses: Iterable[tuple[int, str, int | None, dt.datetime]]) -> None:
    """Count stored answers (customer, channel, nps, when), oldest first, as note_response would have."""
    repo = ActivityRepository(session)
    batch: list[tuple[int, str, int | None, dt.datetime]] = []

    def flush() -> None:
        repo.ensure_activity([cid for cid, *_ in batch])
        rows = {row.customer_id: row for row in repo.activities({cid for cid, *_ in batch})}
        for cid, channel, nps, at in batch:
            _add_response(rows[cid], channel=channel, nps=nps, at=at)
        session.flush()
        batch.clear()

    for response in responses:
        batch.append(response)
        if len(batch) >= 5000:
            flush()
    if batch:
        flush()


def has_address_sql(alias: str, address: str) -> str:
    """SQL true when the customer row `alias` holds this kind of address (`email`, `phone`): the
    snapshot's has_email and has_phone, for a planner working in the database."""
    return address_present_sql(alias, address)


def customer_join(alias: str, customer: str) -> str:
    """An inner JOIN of the customer row, as `alias`, on a customer id column."""
    return customer_join_sql(alias, customer)


def value_tier_sql(alias: str) -> str:
    """The customer row's value tier, '' for none, as SQL."""
    return value_tier_column_sql(alias)


def external_ids(session: Session, customer_ids: Iterable[int]) -> dict[int, str]:
    return CustomerRepository(session).external_ids(customer_ids)


_IDENTITIES = "followup.customer_identities"


def locale_and_external_id(session: Session, customer_id: int) -> tuple[str, str] | None:
    """The customer's locale and external id, read without loading the customer and once per
    session: the answer path asks twice (the page's language, the reward's audit line) while it
    holds the write lock."""
    known: dict[int, tuple[str, str] | None] = session.info.setdefault(_IDENTITIES, {})
    if customer_id not in known:
        known[customer_id] = CustomerRepository(session).locale_and_external_id(customer_id)
    return known[customer_id]


def get_by_id(session: Session, customer_id: int) -> Customer | None:
    return session.get(Customer, customer_id)


def get_many(session: Session, customer_ids: Iterable[int]) -> dict[int, Customer]:
    return {customer.id: customer for customer in CustomerRepository(session).by_ids(set(customer_ids))}


def load_for_messages(session: Session, customer_ids: Iterable[int], *, keys: KeyProvider) -> dict[int, Customer]:
    """The customers of a batch of messages, and their data keys, in two queries: afterwards
    `get_by_id`, sealing and opening cost no query for them for the rest of the session (which
    holds on to them: its identity map alone would let them go)."""
    ids = set(customer_ids)
    sealing.load_keys(session, ids, keys=keys)
    found = get_many(session, ids)
    session.info.setdefault(_HELD, {}).update(found)
    return found


def masked_address(session: Session, customer: Customer, kind: str, *, keys: KeyProvider) -> str | None:
    """The customer's contact point of this kind, masked as everywhere staff look
    (z***@example.com, 138****1234)."""
    address = contact_address(session, customer, kind, keys=keys)
    return None if address is None else contact_points.mask_value(kind, address)


def audience_ids(session: Session, rule: Node | None, *, now: dt.datetime) -> list[int]:
    """The customers a rule tree over `customer.*` accepts as of `now`, found by the database
    (AudienceFieldError for a field an audience cannot be found by)."""
    return matching_ids(session, rule, now=now)


def audience_members(session: Session, rule: Node | None, *, now: dt.datetime) -> list[tuple[int, str, str]]:
    """(id, external id, time zone) of the customers a rule accepts as of `now`, found by the database."""
    return matching_members(session, rule, now=now)


def audience_count(session: Session, rule: Node | None, *, now: dt.datetime) -> int:
    return count_matching(session, rule, now=now)


def audience_by_locale(session: Session, rule: Node | None, *, now: dt.datetime) -> dict[str, int]:
    return dict(sorted(count_by_locale(session, rule, now=now).items()))


def audience_sample(
    session: Session, rule: Node | None, *, now: dt.datetime, keys: KeyProvider, size: int = 20
) -> list[CustomerSample]:
    """The first `size` customers the rule accepts, contact points masked as staff see them."""
    return samples(session, matching_ids(session, rule, now=now, limit=size), keys=keys)


def samples(session: Session, ids: Sequence[int], *, keys: KeyProvider) -> list[CustomerSample]:
    """These customers as staff see them in a preview, contact points masked, in the order given."""
    rows = {row.id: row for row in CustomerRepository(session).by_ids(list(ids))}
    return [
        CustomerSample(
            customer_id=rows[cid].external_id,
            locale=rows[cid].locale,
            time_zone=rows[cid].time_zone,
            value_tier=rows[cid].value_tier,
            email=masked_address(session, rows[cid], "email", keys=keys),
            phone=masked_address(session, rows[cid], "phone", keys=keys),
        )
        for cid in ids
        if cid in rows
    ]
