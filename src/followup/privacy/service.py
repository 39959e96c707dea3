"""Consent per purpose and channel, the audit log, and one-click unsubscribe links."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from sqlalchemy.orm import Session

from followup.kernel.actors import Actor
from followup.kernel.crypto import hash_token, new_token
from followup.kernel.errors import NotFound
from followup.privacy.chain import ChainLine, ChainVerdict, walk
from followup.privacy.enums import PURPOSES, is_channel_name
from followup.privacy.models import AuditEntry, Consent, ConsentRecord, UnsubscribeLink
from followup.privacy.repository import PrivacyRepository, consent_join_sql
from followup.webhooks import service as webhooks


class UnsubscribeLinkInvalid(NotFound):
    code = "unsubscribe_link_invalid"


def record_audit(
    session: Session,
    *,
    actor: Actor,
    subject_type: str,
    subject_id: str,
    event: str,
    now: dt.datetime,
    old: Mapping[str, Any] | None = None,
    new: Mapping[str, Any] | None = None,
) -> None:
    """One line of the audit log, chained to the last. The session's pending changes are written
    first, so a transaction takes the row locks of its change before the chain's head (one order
    for every writer: no deadlock between an audited change and another's audit line)."""
    session.flush()
    PrivacyRepository(session).add_audit_row(
        at=now,
        actor=str(actor),
        subject_type=subject_type,
        subject_id=subject_id,
        event=event,
        old=dict(old) if old is not None else None,
        new=dict(new) if new is not None else None,
    )


AUDIT_PAGE = 1000


def verify_audit_chain(session: Session, *, page: int = AUDIT_PAGE) -> ChainVerdict:
    """Walk the whole audit log in chain order, a page at a time, against its head: the first line
    altered, removed or inserted, if any. Run it in one read transaction (one snapshot), so lines
    appended meanwhile neither show nor break it."""
    repo = PrivacyRepository(session)
    head = repo.audit_chain_head()

    def lines() -> Iterator[ChainLine]:
        after = 0
        while True:
            rows = repo.audit_chain_page(after_seq=after, limit=page)
            yield from rows
            if len(rows) < page:
                return
            after = rows[-1].seq

    return walk(lines(), head)


def record_consents(
    session: Session,
    customer_id: int,
    changes: Mapping[str, Mapping[str, bool]],
    *,
    subject_id: str,
    source: str,
    notice_version: str,
    actor: Actor,
    now: dt.datetime,
) -> int:
    """Apply consent changes; only real changes reach the ledger and the audit log.

    Returns the number of changes recorded.
    """
    repo = PrivacyRepository(session)
    changed: list[tuple[str, str, bool | None, bool]] = []
    for purpose, by_channel in changes.items():
        for channel, granted in by_channel.items():
            current = repo.get_consent(customer_id, purpose, channel)
            if current is not None and current.granted == granted:
                continue
            if current is None:
                repo.add(
                    Consent(customer_id=customer_id, purpose=purpose, channel=channel, granted=granted, updated_at=now)
                )
            else:
                current.granted = granted
                current.updated_at = now
            changed.append((purpose, channel, None if current is None else not granted, granted))
            repo.add(
                ConsentRecord(
                    customer_id=customer_id,
                    purpose=purpose,
                    channel=channel,
                    granted=granted,
                    source=source,
                    notice_version=notice_version,
                    actor=str(actor),
                    recorded_at=now,
                )
            )
    # Every consent row written (and locked) before the first audit line takes the chain's head.
    session.flush()
    for purpose, channel, old, granted in changed:
        record_audit(
            session,
            actor=actor,
            subject_type="customer",
            subject_id=subject_id,
            event="consent.granted" if granted else "consent.withdrawn",
            now=now,
            old={"purpose": purpose, "channel": channel, "granted": old},
            new={"purpose": purpose, "channel": channel, "granted": granted, "source": source},
        )
        webhooks.publish(
            session,
            "consent.changed",
            {"customer_id": subject_id, "purpose": purpose, "channel": channel, "granted": granted, "source": source},
            now=now,
        )
    session.flush()
    return len(changed)


def get_consents(session: Session, customer_id: int) -> dict[str, dict[str, bool]]:
    result: dict[str, dict[str, bool]] = {}
    for row in PrivacyRepository(session).all_consents(customer_id):
        result.setdefault(row.purpose, {})[row.channel] = row.granted
    return result


def consents_for(session: Session, customer_ids: Iterable[int], *, purpose: str) -> dict[int, dict[str, bool]]:
    """Bulk read for the contact policy: customer → channel → granted (absent means never asked)."""
    return PrivacyRepository(session).consents_for(customer_ids, purpose)


def consent_join(alias: str, customer: str, *, purpose: str, channel: str) -> str:
    """A LEFT JOIN of the customer's (a column expression) consent to this purpose on this channel,
    granted when `alias.granted = TRUE`: what `consents_for` tells, for a planner in the database."""
    if purpose not in PURPOSES or not is_channel_name(channel):
        raise ValueError("an unknown purpose or a channel name of another shape")  # written into the SQL
    return consent_join_sql(alias, customer, purpose=purpose, channel=channel)


def list_consent_ledger(session: Session, customer_id: int) -> list[ConsentRecord]:
    return PrivacyRepository(session).ledger(customer_id)


def audit_page(session: Session, *, subject_type: str | None, limit: int, offset: int) -> tuple[list[AuditEntry], int]:
    return PrivacyRepository(session).audit_page(subject_type=subject_type, limit=limit, offset=offset)


def consent_ledger_page(
    session: Session, *, customer_id: int | None, limit: int, offset: int
) -> tuple[list[ConsentRecord], int]:
    return PrivacyRepository(session).ledger_page(customer_id=customer_id, limit=limit, offset=offset)


def list_audit(session: Session, *, subject_type: str, subject_id: str) -> list[AuditEntry]:
    return PrivacyRepository(session).audit_for(subject_type, subject_id)


def create_unsubscribe_link(session: Session, customer_id: int, *, purpose: str, channel: str, now: dt.datetime) -> str:
    token = new_token()
    PrivacyRepository(session).add(
        UnsubscribeLink(
            token_hash=hash_token(token),
            customer_id=customer_id,
            purpose=purpose,
            channel=channel,
            created_at=now,
        )
    )
    return token


def access_unsubscribe_link(session: Session, token: str) -> UnsubscribeLink:
    link = PrivacyRepository(session).unsubscribe_link(hash_token(token))
    if link is None:
        raise UnsubscribeLinkInvalid("This unsubscribe link is not valid.")
    return link


def unsubscribe(
    session: Session,
    token: str,
    *,
    subject_id_of: Mapping[int, str] | None = None,
    notice_version: str,
    now: dt.datetime,
) -> bool:
    """Withdraw the consent the link stands for, on every use of the link.

    The link stays good after its first use: a customer who gave the consent back later (in the
    wallet, through the API) and clicks an old link asks, right now, to be unsubscribed again, so the
    consent is withdrawn again, with its ledger row and audit entry. Returns whether consent was
    withdrawn now (False when it already was, and nothing was written), so the page can say which.
    """
    link = access_unsubscribe_link(session, token)
    PrivacyRepository(session).mark_unsubscribe_used(link.id, now)  # keeps the first use's time
    subject_id = (subject_id_of or {}).get(link.customer_id, str(link.customer_id))
    withdrawn = record_consents(
        session,
        link.customer_id,
        {link.purpose: {link.channel: False}},
        subject_id=subject_id,
        source="unsubscribe_link",
        notice_version=notice_version,
        actor=Actor(kind="customer", id=subject_id),
        now=now,
    )
    return withdrawn > 0
