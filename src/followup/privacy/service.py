"""Consent per purpose and channel, privacy notices, the audit log, and one-click unsubscribe links.

Every consent is recorded under the current privacy notice: the latest one published, or, until
the wallet publishes one, the built-in notice (`built_in_notice.py`) whose version is
FOLLOWUP_PRIVACY_NOTICE_VERSION. A notice may ask for fresh consent to purposes: grants of such a
purpose given under an earlier notice stop counting, in `consents_for` and `consent_join` alike,
until the customer gives them again.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from sqlalchemy.orm import Session

from followup.kernel.actors import Actor
from followup.kernel.crypto import hash_token, new_token
from followup.kernel.errors import Conflict, InvalidInput, NotFound
from followup.kernel.text import text_problem
from followup.privacy.built_in_notice import BUILT_IN_TEXT
from followup.privacy.chain import ChainLine, ChainVerdict, walk
from followup.privacy.enums import CONSENT_SOURCES, GIVEN_BY_DEFAULT, PURPOSES, is_channel_name, is_notice_version
from followup.privacy.models import AuditEntry, Consent, ConsentRecord, PrivacyNotice, UnsubscribeLink
from followup.privacy.repository import PrivacyRepository, consent_join_sql
from followup.privacy.schemas import MAX_NOTICE_CHARS, ConsentHistoryItem, NoticeIn, NoticeOut
from followup.webhooks import service as webhooks

# What `GET /privacy/notices/current` and the console call the current notice: no version may be named so.
CURRENT = "current"
BUILT_IN_PUBLISHER = "followup"


class UnsubscribeLinkInvalid(NotFound):
    code = "unsubscribe_link_invalid"


class NoticeNotFound(NotFound):
    code = "notice_not_found"


class NoticePublished(Conflict):
    code = "notice_published"


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
    built_in_notice_version: str,
    actor: Actor,
    now: dt.datetime,
) -> int:
    """Apply consent changes under the current notice (the built-in one, of `built_in_notice_version`,
    while none is published); only real changes reach the ledger and the audit log. A grant
    repeated is a change when the one it repeats no longer counts (a later notice asks for fresh
    consent): the customer gave it again.

    Returns the number of changes recorded.
    """
    if source not in CONSENT_SOURCES:
        raise ValueError(f"{source!r} is not a consent source")  # ours to name, never the caller's words
    repo = PrivacyRepository(session)
    notice_version, notice_digest = _current_version_and_hash(session, built_in_notice_version)
    changed: list[tuple[str, str, bool | None, bool]] = []
    for purpose, by_channel in changes.items():
        counted = fresh_notice_versions(session, purpose) if any(by_channel.values()) else None
        for channel, granted in by_channel.items():
            current = repo.get_consent(customer_id, purpose, channel)
            if current is not None and current.granted == granted:
                stale = granted and counted is not None and current.notice_version not in counted
                if not stale:
                    continue
            old = None if current is None else current.granted
            if current is None:
                repo.add(
                    Consent(
                        customer_id=customer_id,
                        purpose=purpose,
                        channel=channel,
                        granted=granted,
                        updated_at=now,
                        notice_version=notice_version,
                    )
                )
            else:
                current.granted = granted
                current.updated_at = now
                current.notice_version = notice_version
            changed.append((purpose, channel, old, granted))
            repo.add(
                ConsentRecord(
                    customer_id=customer_id,
                    purpose=purpose,
                    channel=channel,
                    granted=granted,
                    source=source,
                    notice_version=notice_version,
                    notice_hash=notice_digest,
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
            subject_id=str(customer_id),
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
    """Bulk read for the contact policy: customer → channel → granted (absent means never asked,
    or granted under a notice older than one asking for fresh consent to this purpose)."""
    counted = fresh_notice_versions(session, purpose)
    return PrivacyRepository(session).consents_for(customer_ids, purpose, counted_versions=counted)


def consent_join(session: Session, alias: str, customer: str, *, purpose: str, channel: str) -> str:
    """A LEFT JOIN of the customer's (a column expression) consent to this purpose on this channel,
    granted when `alias.granted = TRUE`: what `consents_for` tells, for a planner in the database
    (a grant that no longer counts joins no row)."""
    if purpose not in PURPOSES or not is_channel_name(channel):
        raise ValueError("an unknown purpose or a channel name of another shape")  # written into the SQL
    counted = fresh_notice_versions(session, purpose)
    if counted is not None and not all(is_notice_version(version) for version in counted):
        raise ValueError("a stored notice version of another shape")  # written into the SQL
    return consent_join_sql(alias, customer, purpose=purpose, channel=channel, counted_versions=counted)


def fresh_notice_versions(session: Session, purpose: str) -> frozenset[str] | None:
    """The notice versions a grant of `purpose` must have been given under to count: the latest
    notice asking for fresh consent to it and every one published after; None when no notice asks
    (every grant counts). The built-in notice is older than any published one."""
    published = PrivacyRepository(session).notice_requirements()
    asking = [index for index, (_, purposes) in enumerate(published) if purpose in purposes]
    if not asking:
        return None
    return frozenset(version for version, _ in published[asking[-1] :])


def list_consent_ledger(session: Session, customer_id: int) -> list[ConsentRecord]:
    return PrivacyRepository(session).ledger(customer_id)


def consent_history(
    session: Session, customer_id: int, *, limit: int, offset: int
) -> tuple[list[ConsentHistoryItem], int]:
    """The customer's consent ledger, newest first: every grant and withdrawal, how, by whom and
    under which notice."""
    rows, total = PrivacyRepository(session).ledger_page(customer_id=customer_id, limit=limit, offset=offset)
    items = [
        ConsentHistoryItem(
            id=row.id,
            purpose=row.purpose,
            channel=row.channel,
            granted=row.granted,
            source=row.source,
            actor=row.actor,
            recorded_at=row.recorded_at,
            notice_version=row.notice_version,
            notice_hash=row.notice_hash,
        )
        for row in rows
    ]
    return items, total


# ── privacy notices ──────────────────────────────────────────────────────────────────────────


def notice_hash(version: str, text: Mapping[str, str], requires_fresh_consent: Iterable[str]) -> str:
    """sha256 (hex) of a notice's canonical content: the UTF-8 bytes of the JSON object
    {"requires_fresh_consent": [sorted purposes], "text": {locale: text}, "version": version} with
    sorted keys, no spaces between items and characters as they are (not \\u-escaped). Anyone
    holding a notice's text can compute it again and compare it with a consent's `notice_hash`."""
    canonical = json.dumps(
        {"version": version, "text": dict(text), "requires_fresh_consent": sorted(set(requires_fresh_consent))},
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@functools.cache
def _built_in_hash(version: str) -> str:
    return notice_hash(version, BUILT_IN_TEXT, ())


def _built_in(version: str, *, current: bool) -> NoticeOut:
    return NoticeOut(
        version=version,
        text=dict(BUILT_IN_TEXT),
        requires_fresh_consent=[],
        hash=_built_in_hash(version),
        published_at=None,
        published_by=BUILT_IN_PUBLISHER,
        current=current,
        built_in=True,
    )


def _describe(row: PrivacyNotice, *, current: bool) -> NoticeOut:
    return NoticeOut(
        version=row.version,
        text=dict(row.text),
        requires_fresh_consent=list(row.requires_fresh_consent),
        hash=row.content_hash,
        published_at=row.published_at,
        published_by=row.published_by,
        current=current,
        built_in=False,
    )


def _current_version_and_hash(session: Session, built_in_notice_version: str) -> tuple[str, str]:
    latest = PrivacyRepository(session).latest_notice()
    if latest is None:
        return built_in_notice_version, _built_in_hash(built_in_notice_version)
    return latest.version, latest.content_hash


def current_notice(session: Session, *, built_in_notice_version: str) -> NoticeOut:
    """The latest notice published, or the built-in one while none is."""
    latest = PrivacyRepository(session).latest_notice()
    return _built_in(built_in_notice_version, current=True) if latest is None else _describe(latest, current=True)


def get_notice(session: Session, version: str, *, built_in_notice_version: str) -> NoticeOut | None:
    """A notice by its version: a published one, or the built-in one (until a notice of the same
    version is published, which only happens when FOLLOWUP_PRIVACY_NOTICE_VERSION is changed to it)."""
    repo = PrivacyRepository(session)
    row = repo.notice(version)
    latest = repo.latest_notice()
    if row is not None:
        return _describe(row, current=latest is not None and latest.id == row.id)
    if version == built_in_notice_version:
        return _built_in(version, current=latest is None)
    return None


def access_notice(session: Session, version: str, *, built_in_notice_version: str) -> NoticeOut:
    notice = get_notice(session, version, built_in_notice_version=built_in_notice_version)
    if notice is None:
        raise NoticeNotFound(f"No privacy notice has the version {version!r}.")
    return notice


def list_notices(
    session: Session, *, built_in_notice_version: str, limit: int, offset: int
) -> tuple[list[NoticeOut], int]:
    """Every notice, newest first: those published, then the built-in one, the oldest, which
    consents were given under before the first was published."""
    repo = PrivacyRepository(session)
    rows, published = repo.notices_page(limit=limit, offset=offset)
    items = [_describe(row, current=offset == 0 and index == 0) for index, row in enumerate(rows)]
    with_built_in = repo.notice(built_in_notice_version) is None
    if with_built_in and offset <= published < offset + limit:
        items.append(_built_in(built_in_notice_version, current=published == 0))
    return items, published + (1 if with_built_in else 0)


def check_notice(version: str, body: NoticeIn) -> None:
    """Raise InvalidInput, with the field and a stable code, when this notice may not be published."""
    if not is_notice_version(version):
        raise InvalidInput(
            "A version is 1 to 32 letters, digits, '.', '_' or '-', starting with a letter or digit, "
            "such as 2026-12-01.",
            field="version",
        )
    if version == CURRENT:
        raise InvalidInput(
            f"'{CURRENT}' names the current notice and cannot be a version; choose another, such as a date.",
            field="version",
        )
    for locale, text in body.text.by_locale().items():
        problem = text_problem(text, max_chars=MAX_NOTICE_CHARS, multiline=True)
        if problem is not None:
            code, sentence = problem
            raise InvalidInput(f"text.{locale} {sentence}", code=code, field=f"text.{locale}")
    given = GIVEN_BY_DEFAULT.intersection(body.requires_fresh_consent)
    if given:
        raise InvalidInput(
            f"'{sorted(given)[0]}' is given by default until the customer withdraws it, so a notice "
            "cannot ask for it again; ask only for feedback or research.",
            code="consent_given_by_default",
            field="requires_fresh_consent",
        )


def _same_notice(existing: NoticeOut, digest: str) -> NoticeOut:
    """The notice already published under a version, when its content is the one asked for."""
    if existing.hash == digest:
        return existing
    if existing.built_in:
        message = (
            f"The version {existing.version!r} is the built-in notice's (FOLLOWUP_PRIVACY_NOTICE_VERSION), "
            "which counts as published; publish your text under another version."
        )
    else:
        message = (
            f"The privacy notice {existing.version!r} is already published with other content, and a "
            "published notice never changes; publish the new text under a new version."
        )
    raise NoticePublished(message, field="version")


def publish_notice(
    session: Session, version: str, body: NoticeIn, *, built_in_notice_version: str, actor: Actor, now: dt.datetime
) -> tuple[NoticeOut, bool]:
    """Publish a notice, which becomes the current one; returns it and whether it is new.

    A published notice never changes: the same version again with the same content is the same
    notice (nothing written), with other content NoticePublished. The built-in notice's version
    counts as published, with the built-in text.
    """
    check_notice(version, body)
    text = body.text.by_locale()
    purposes = sorted(set(body.requires_fresh_consent))
    digest = notice_hash(version, text, purposes)
    repo = PrivacyRepository(session)
    existing = get_notice(session, version, built_in_notice_version=built_in_notice_version)
    if existing is not None:
        return _same_notice(existing, digest), False
    row = PrivacyNotice(
        version=version,
        text=text,
        requires_fresh_consent=purposes,
        content_hash=digest,
        published_at=now,
        published_by=str(actor),
    )
    if not repo.add_notice_once(row):  # published by another request a moment ago
        raced = get_notice(session, version, built_in_notice_version=built_in_notice_version)
        if raced is None:
            raise RuntimeError("a notice's version was taken, yet no notice has it")
        return _same_notice(raced, digest), False
    record_audit(
        session,
        actor=actor,
        subject_type="privacy_notice",
        subject_id=version,
        event="privacy_notice.published",
        now=now,
        new={"version": version, "hash": digest, "requires_fresh_consent": purposes},
    )
    return _describe(row, current=True), True


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
    built_in_notice_version: str,
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
        source="unsubscribe",
        built_in_notice_version=built_in_notice_version,
        actor=Actor(kind="customer", id=str(link.customer_id)),
        now=now,
    )
    return withdrawn > 0
