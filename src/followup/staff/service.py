"""Staff accounts, their console sign-in and sessions, and API keys."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from followup.kernel.actors import Actor
from followup.kernel.crypto import KeyProvider, hash_token, new_token
from followup.kernel.errors import Conflict, FollowupError, InvalidInput, NotFound, Unauthorized
from followup.kernel.logging import get_logger
from followup.kernel.text import control_character
from followup.staff import roles
from followup.staff import scopes as key_scopes
from followup.staff.models import ApiKey, ConsoleSession, StaffMember
from followup.staff.repository import StaffRepository

log = get_logger(__name__)
KEY_PREFIX = "fu_"
QUEUE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
MAX_QUEUES = 20
KEY_USE_RESOLUTION = dt.timedelta(minutes=1)  # a key's last use is kept to the minute
ROLES = roles.ROLES
# Failures older than this are forgotten: a colleague's typo last week does not shorten today's patience.
FAILURE_MEMORY = dt.timedelta(days=1)


class PasswordChecker:
    """argon2 hashing and verification, with one dummy hash made when the checker is built.

    Every sign-in runs exactly one argon2 verification with the same parameters, whether the email
    belongs to an enabled account or not: an unknown email is checked against the dummy hash, so
    the answer takes as long as a wrong password and does not tell which staff accounts exist.
    """

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        self.dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches; None stands for "no usable account" and never matches."""
        try:
            matched = self.hasher.verify(self.dummy_hash if password_hash is None else password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
        return bool(matched) and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self.hasher.check_needs_rehash(password_hash)


@functools.cache
def password_checker() -> PasswordChecker:
    """The process's checker; the console builds it at start-up so no sign-in pays for the dummy hash."""
    return PasswordChecker()


@dataclass(frozen=True)
class SignInLimits:
    """How many wrong passwords are free before sign-in locks, and how long the lock lasts: the
    first lock lasts `first_lock`, each further failure doubles it, up to `longest_lock`."""

    failures_per_account: int
    failures_per_address: int
    first_lock: dt.timedelta
    longest_lock: dt.timedelta

    def lock_for(self, failures: int, free: int) -> dt.timedelta | None:
        if failures < free:
            return None
        doublings = min(failures - free, 30)  # 2**30 first locks is past any sane cap already
        return min(self.first_lock * (1 << doublings), self.longest_lock)


class SignInThrottled(FollowupError):
    status_code = 429
    code = "sign_in_throttled"

    def __init__(self, retry_at: dt.datetime) -> None:
        super().__init__(
            f"Too many failed sign-ins. Try again after {retry_at:%H:%M:%S} UTC.", code="sign_in_throttled"
        )
        self.retry_at = retry_at


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"


@dataclass(frozen=True)
class KeyHolder:
    """Who is calling with an API key, and what the key allows."""

    actor: Actor
    key_id: int
    scopes: tuple[str, ...]
    staff_id: int | None
    last_used_at: dt.datetime | None


@dataclass(frozen=True)
class ApiKeyInfo:
    """A key as `followup apikey list` shows it: never the key itself."""

    name: str
    prefix: str
    scopes: tuple[str, ...]
    staff: str | None
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


def create_api_key(
    session: Session,
    *,
    name: str,
    now: dt.datetime,
    scopes: Iterable[str] = (),
    staff_email: str | None = None,
) -> tuple[ApiKey, str]:
    """A new key with `scopes` (none given: `admin`, as keys always were), issued for the staff
    member `staff_email` if given; the clear key is returned once and never stored."""
    name = name.strip()
    if not 1 <= len(name) <= 100 or control_character(name) is not None:
        raise InvalidInput("the key name must be 1 to 100 characters, without control characters", field="name")
    try:
        chosen = key_scopes.check(scopes)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="scope") from exc
    repo = StaffRepository(session)
    staff_id = access_staff_by_email(session, staff_email).id if staff_email else None
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        name=name,
        prefix=key[:10],
        key_hash=hash_token(key),
        scopes=" ".join(chosen),
        staff_id=staff_id,
        created_at=now,
    )
    repo.add(row)
    session.flush()
    return row, key


def list_api_keys(session: Session) -> list[ApiKeyInfo]:
    repo = StaffRepository(session)
    emails = repo.staff_emails()
    return [
        ApiKeyInfo(
            name=row.name,
            prefix=row.prefix,
            scopes=tuple(key_scopes.parse(row.scopes)),
            staff=emails.get(row.staff_id) if row.staff_id is not None else None,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )
        for row in repo.api_keys()
    ]


def revoke_api_key(session: Session, name: str, *, now: dt.datetime) -> int:
    """Revoke every active key named `name` (names are the operator's and may repeat, e.g. a key
    made again by a deployment script); returns how many."""
    rows = StaffRepository(session).active_api_keys_named(name.strip())
    if not rows:
        raise ApiKeyNotFound(f"No active API key is named '{name.strip()}'.")
    for row in rows:
        row.revoked_at = now
    return len(rows)


def authenticate_api_key(session: Session, authorization: str | None) -> KeyHolder:
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":  # the scheme is case-insensitive (RFC 9110 §11.1)
        raise Unauthorized(
            "Send your API key as 'Authorization: Bearer <key>'. Create one with `followup apikey create --name NAME`.",
            code="missing_api_key",
        )
    key = key.strip()
    row = StaffRepository(session).api_key_by_hash(hash_token(key))
    if row is None or row.revoked_at is not None:
        raise Unauthorized("This API key is not valid or was revoked.", code="invalid_api_key")
    role: str | None = None
    queues: tuple[str, ...] = ()
    if row.staff_id is not None:
        # A key issued for a staff member acts with their role and queues, and dies with their account.
        member = session.get(StaffMember, row.staff_id)
        if member is None or member.disabled_at is not None:
            raise Unauthorized("This API key belongs to a staff account that is disabled.", code="invalid_api_key")
        role, queues = member.role, tuple(member.queues.split())
    return KeyHolder(
        actor=Actor(kind="api_key", id=str(row.id), label=row.name, role=role, queues=queues, staff_id=row.staff_id),
        key_id=row.id,
        scopes=tuple(key_scopes.parse(row.scopes)),
        staff_id=row.staff_id,
        last_used_at=row.last_used_at,
    )


def note_api_key_use(session: Session, key_id: int, *, now: dt.datetime) -> None:
    """Record that a key was used, at most once a minute (a write per request would cost ingest)."""
    StaffRepository(session).touch_api_key(key_id, now=now, unless_since=now - KEY_USE_RESOLUTION)


def _normal_email(email: str) -> str:
    return email.strip().lower()


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
    return role


def check_queues(queues: Iterable[str]) -> list[str]:
    """Queue names, each a lower-case word (`calls`, `security`, `vip-calls`), in the order given."""
    chosen: list[str] = []
    for queue in queues:
        name = queue.strip()
        if not QUEUE_NAME.fullmatch(name):
            raise InvalidInput(
                f"'{name}' is not a queue name: use 1 to 32 lower-case letters, digits, '-' or '_', "
                "starting with a letter",
                field="queues",
            )
        if name not in chosen:
            chosen.append(name)
    if len(chosen) > MAX_QUEUES:
        raise InvalidInput(f"a staff member belongs to at most {MAX_QUEUES} queues", field="queues")
    return chosen


def create_staff(
    session: Session,
    *,
    email: str,
    role: str,
    now: dt.datetime,
    queues: Iterable[str] = (),
    passwords: PasswordChecker | None = None,
) -> tuple[StaffMember, str]:
    """A staff account with a generated password, returned once in clear."""
    email = _normal_email(email)
    if "@" not in email or len(email) > 254 or control_character(email) is not None or " " in email:
        raise InvalidInput("give a valid email address for the staff account", field="email")
    check_role(role)
    chosen = check_queues(queues)
    if StaffRepository(session).staff_by_email(email) is not None:
        raise Conflict(f"A staff account for {email} already exists.", code="staff_exists", field="email")
    password = secrets.token_urlsafe(12)
    member = StaffMember(
        email=email,
        password_hash=(passwords or password_checker()).hash(password),
        role=role,
        queues=" ".join(chosen),
        created_at=now,
    )
    StaffRepository(session).add(member)
    session.flush()
    return member, password


def access_staff_by_email(session: Session, email: str) -> StaffMember:
    member = StaffRepository(session).staff_by_email(_normal_email(email))
    if member is None:
        raise NotFound(f"There is no staff account for {email.strip()}.", code="staff_not_found", field="email")
    return member


def set_staff_password(session: Session, member: StaffMember, *, passwords: PasswordChecker | None = None) -> str:
    """Give the account a new generated password (returned once in clear) and end all its console
    sessions: whoever knew the old password may hold one of them."""
    password = secrets.token_urlsafe(12)
    member.password_hash = (passwords or password_checker()).hash(password)
    StaffRepository(session).delete_sessions_of(member.id)
    session.flush()
    return password


def access_staff(session: Session, staff_id: int) -> StaffMember:
    member = StaffRepository(session).staff_by_id(staff_id)
    if member is None:
        raise NotFound(f"There is no staff account {staff_id}.", code="staff_not_found", field="staff_id")
    return member


def list_staff(session: Session, *, limit: int, offset: int) -> tuple[list[StaffMember], int]:
    return StaffRepository(session).staff_page(limit=limit, offset=offset)


def enable_staff(session: Session, member: StaffMember) -> StaffMember:
    member.disabled_at = None
    return member


def disable_staff(session: Session, member: StaffMember, *, now: dt.datetime) -> StaffMember:
    """Disable the account and end its console sessions at once. Disabling twice keeps the first date."""
    if member.disabled_at is None:
        member.disabled_at = now
    StaffRepository(session).delete_sessions_of(member.id)
    session.flush()
    return member


def _throttle_key(secret: bytes, scope: str, value: str) -> str:
    """An HMAC, not a plain hash: a leaked table must not let anyone test a list of emails against it."""
    return hmac.new(secret, f"{scope}|{value}".encode(), hashlib.sha256).hexdigest()


def sign_in_staff(
    session: Session,
    *,
    email: str,
    password: str,
    address: str,
    limits: SignInLimits,
    throttle_secret: bytes,
    passwords: PasswordChecker,
    now: dt.datetime,
    code: str = "",
    keys: KeyProvider | None = None,
) -> StaffMember:
    """Check a console sign-in against the account's and the client address's failure counts.

    An account with two-factor on also needs the code of its authenticator app (`code`); a wrong or
    missing code counts as a wrong password, and the answer does not say which of them was wrong.

    While either is locked, no password is checked at all (the right one included), and the
    attempt does not lengthen the lock. Each wrong password counts for both; a success clears the
    account's count but not the address's, so one valid account cannot wash an address clean.
    The failure counts are written before `Unauthorized` is raised: the caller must commit them
    even though sign-in failed. Logs name the account by staff id or by a prefix of its HMAC.
    """
    email = _normal_email(email)
    account_key = _throttle_key(throttle_secret, "account", email)
    address_key = _throttle_key(throttle_secret, "address", address)
    repository = StaffRepository(session)
    member = repository.staff_by_email(email) if "\x00" not in email else None
    who = {"staff_id": member.id if member else None, "account": account_key[:12], "address": address_key[:12]}

    locked_until = repository.latest_lock([("account", account_key), ("address", address_key)], now=now)
    if locked_until is not None:
        log.warning("console_sign_in_failed", reason="throttled", retry_at=locked_until.isoformat(), **who)
        raise SignInThrottled(locked_until)

    usable = member is not None and member.disabled_at is None
    right = member is not None and usable and passwords.verify(member.password_hash, password)
    if right and member is not None and _second_factor_ok(member, code, keys=keys, now=now):
        repository.clear_failures("account", account_key)
        if passwords.needs_rehash(member.password_hash):
            member.password_hash = passwords.hash(password)
        return member
    if not usable:
        passwords.verify(None, password)  # the same argon2 work as a wrong password

    forget_before = now - FAILURE_MEMORY
    account_failures = repository.count_failure("account", account_key, now=now, forget_before=forget_before)
    address_failures = repository.count_failure("address", address_key, now=now, forget_before=forget_before)
    for scope, key, failures, free in (
        ("account", account_key, account_failures, limits.failures_per_account),
        ("address", address_key, address_failures, limits.failures_per_address),
    ):
        lock = limits.lock_for(failures, free)
        if lock is not None:
            repository.lock(scope, key, until=now + lock)
    reason = "unknown_account" if member is None else "disabled_account" if not usable else "wrong_password"
    log.warning(
        "console_sign_in_failed",
        reason=reason,
        account_failures=account_failures,
        address_failures=address_failures,
        **who,
    )
    raise Unauthorized("Wrong email or password, or a wrong code from the authenticator app.", code="invalid_login")


def start_console_session(session: Session, member: StaffMember, *, now: dt.datetime, lifetime: dt.timedelta) -> str:
    """A new session row; the token for the cookie is returned once, only its hash is stored."""
    repository = StaffRepository(session)
    repository.delete_expired_sessions(now=now)
    token = new_token()
    repository.add(
        ConsoleSession(token_hash=hash_token(token), staff_id=member.id, created_at=now, expires_at=now + lifetime)
    )
    session.flush()
    return token


def get_console_session_staff(session: Session, token: str, *, now: dt.datetime) -> StaffMember | None:
    """The enabled staff member behind a session token, or None once it ended, expired or the
    account was disabled."""
    if not token or len(token) > 100:
        return None
    return StaffRepository(session).active_session_staff(hash_token(token), now=now)


def end_console_session(session: Session, token: str) -> None:
    StaffRepository(session).delete_session(hash_token(token))


def end_every_console_session(session: Session, staff_id: int) -> int:
    """Sign a staff member out on every browser at once (a lost laptop, a shared computer)."""
    return StaffRepository(session).delete_sessions_of(staff_id)


# Two-factor sign-in: TOTP (RFC 6238), 6 digits, 30-second steps, one step of clock drift allowed.

TOTP_ISSUER = "followup"
_TOTP_CONTEXT = b"staff-totp"
_TOTP_DRIFT_STEPS = 1


def _totp(member: StaffMember, *, keys: KeyProvider) -> pyotp.TOTP | None:
    if member.totp_wrapped is None:
        return None
    secret = keys.unwrap(member.totp_wrapped, context=_TOTP_CONTEXT + b":" + str(member.id).encode())
    return pyotp.TOTP(secret.decode("ascii"))


def _second_factor_ok(member: StaffMember, code: str, *, keys: KeyProvider | None, now: dt.datetime) -> bool:
    """True for an account without two-factor, else whether `code` is good (and unused)."""
    if member.totp_enabled_at is None:
        return True
    return keys is not None and _take_code(member, code, keys=keys, now=now)


def _take_code(member: StaffMember, code: str, *, keys: KeyProvider, now: dt.datetime) -> bool:
    """Whether `code` is the member's current code (or one step either side), and not one already
    used: accepting it records its step, so the same code never signs in twice."""
    totp = _totp(member, keys=keys)
    code = code.strip().replace(" ", "")
    if totp is None or len(code) != 6 or not code.isdigit():
        return False
    step = int(now.timestamp()) // totp.interval
    for candidate in range(step - _TOTP_DRIFT_STEPS, step + _TOTP_DRIFT_STEPS + 1):
        if member.totp_last_step is not None and candidate <= member.totp_last_step:
            continue
        if hmac.compare_digest(totp.at(candidate * totp.interval), code):
            member.totp_last_step = candidate
            return True
    return False


@dataclass(frozen=True)
class TwoFactorSetup:
    """What a staff member types into an authenticator app: the secret, and the same as a URI."""

    secret: str
    uri: str


def start_two_factor(session: Session, member: StaffMember, *, keys: KeyProvider) -> TwoFactorSetup:
    """The secret being set up (a new one unless one is waiting to be confirmed). Two-factor that
    is on is not replaced here: an admin turns it off for a member first (`reset-two-factor`)."""
    if member.totp_enabled_at is not None:
        raise Conflict("Two-factor sign-in is already on for this account.", code="two_factor_on")
    totp = _totp(member, keys=keys)
    if totp is None:
        secret = pyotp.random_base32()
        member.totp_wrapped = keys.wrap(secret.encode("ascii"), context=_TOTP_CONTEXT + b":" + str(member.id).encode())
        totp = pyotp.TOTP(secret)
    session.flush()
    return TwoFactorSetup(secret=totp.secret, uri=totp.provisioning_uri(name=member.email, issuer_name=TOTP_ISSUER))


def confirm_two_factor(
    session: Session, member: StaffMember, code: str, *, keys: KeyProvider, now: dt.datetime
) -> bool:
    """Turn two-factor on once the app shows the right code; False when the code is wrong."""
    if member.totp_enabled_at is not None or not _take_code(member, code, keys=keys, now=now):
        return False
    member.totp_enabled_at = now
    session.flush()
    return True


def reset_two_factor(session: Session, member: StaffMember) -> None:
    """Turn two-factor off (a lost phone); the member sets it up again at the next sign-in."""
    member.totp_wrapped, member.totp_enabled_at, member.totp_last_step = None, None, None
    StaffRepository(session).delete_sessions_of(member.id)
    session.flush()


def find_staff_by_email(session: Session, email: str) -> StaffMember | None:
    return StaffRepository(session).staff_by_email(_normal_email(email))


def queue_members(session: Session, queue: str, *, role: str) -> list[StaffMember]:
    """The enabled staff members of this role who belong to `queue`, oldest account first."""
    return [member for member in StaffRepository(session).enabled_with_role(role) if queue in member.queues.split()]


def queue_supervisors(session: Session, queue: str) -> list[StaffMember]:
    """Who hears of a queue's breached deadlines: the admins who belong to the queue, or every
    enabled admin when none does."""
    admins = StaffRepository(session).enabled_with_role(roles.ADMIN)
    return [member for member in admins if queue in member.queues.split()] or admins


def staff_emails(session: Session) -> dict[int, str]:
    return StaffRepository(session).staff_emails()
