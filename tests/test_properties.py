"""Properties that must hold for every input (hypothesis): quiet hours in any time zone, the
metrics, the masking of contact points, and the crypto. Pure functions; no database."""

from __future__ import annotations

import datetime as dt
import hashlib
import zoneinfo
from functools import cache
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from followup.customers.contacts import mask_email, mask_phone, normalize_email
from followup.insights.metrics import csat, nps
from followup.kernel.crypto import DecryptionFailed, Keyring, LocalKeyProvider, open_sealed, seal
from followup.kernel.errors import ConfigurationError
from followup.policy.quiet_hours import quiet_until

UTC = dt.UTC
PURE = settings(max_examples=200, deadline=None)

# ── quiet hours ─────────────────────────────────────────────────────────────────────────────

# Zones chosen for their quirks: DST north and south, half- and quarter-hour offsets, a 30-minute
# DST shift (Lord Howe), Ramadan DST (Casablanca), no DST at all, and the extremes of the dateline.
QUIRKY_ZONES = [
    "UTC",
    "Asia/Shanghai",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Tehran",
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "America/St_Johns",
    "America/Santiago",
    "America/Sao_Paulo",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
    "Pacific/Chatham",
    "Africa/Casablanca",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
]
ALL_ZONES = sorted(zoneinfo.available_timezones())
DAY_MINUTES = 24 * 60


@cache
def transitions(time_zone: str) -> tuple[dt.datetime, ...]:
    """The UTC hours in 2025–2027 right after the zone's offset changed (DST starts and ends)."""
    zone = ZoneInfo(time_zone)
    found = []
    at = dt.datetime(2025, 1, 1, tzinfo=UTC)
    previous = at.astimezone(zone).utcoffset()
    while at < dt.datetime(2028, 1, 1, tzinfo=UTC):
        at += dt.timedelta(hours=1)
        offset = at.astimezone(zone).utcoffset()
        if offset != previous:
            found.append(at)
            previous = offset
    return tuple(found)


def inside(local: dt.time, start: dt.time, end: dt.time) -> bool:
    """Quiet hours, written independently of the code under test: minutes since the window
    opened, modulo a day, are fewer than the window's length."""
    minute = local.hour * 60 + local.minute
    opened = start.hour * 60 + start.minute
    length = (end.hour * 60 + end.minute - opened) % DAY_MINUTES
    return (minute - opened) % DAY_MINUTES < length


def window_length(start: dt.time, end: dt.time) -> dt.timedelta:
    return dt.timedelta(minutes=(end.hour * 60 + end.minute - start.hour * 60 - start.minute) % DAY_MINUTES)


def exists_on_wall_clock(day: dt.date, wall: dt.time, zone: ZoneInfo) -> bool:
    naive = dt.datetime.combine(day, wall)
    return naive.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive


minutes_of_day = st.integers(0, DAY_MINUTES - 1).map(lambda m: dt.time(m // 60, m % 60))
# Hypothesis takes naive bounds and attaches the zone itself.
EARLIEST, LATEST = dt.datetime(2020, 1, 1), dt.datetime(2036, 1, 1)  # noqa: DTZ001
instants = st.datetimes(min_value=EARLIEST, max_value=LATEST, timezones=st.just(UTC))


@st.composite
def quiet_cases(draw: st.DrawFn) -> tuple[dt.datetime, str, dt.time, dt.time]:
    """An instant, a zone and a window; half the time both the instant and the window's end are
    drawn close to one of the zone's DST changes, where wall clocks skip or repeat."""
    time_zone = draw(st.sampled_from(QUIRKY_ZONES))
    start = draw(minutes_of_day)
    changes = transitions(time_zone)
    if changes and draw(st.booleans()):
        change = draw(st.sampled_from(changes))
        at = change + dt.timedelta(seconds=draw(st.integers(-30 * 3600, 30 * 3600)))
        end_near = change + dt.timedelta(minutes=draw(st.integers(-120, 120)))
        end = end_near.astimezone(ZoneInfo(time_zone)).time().replace(second=0, microsecond=0)
    else:
        at = draw(instants)
        end = draw(minutes_of_day)
    return at, time_zone, start, end


def check_quiet_until(at: dt.datetime, time_zone: str, start: dt.time, end: dt.time) -> dt.datetime | None:
    zone = ZoneInfo(time_zone)
    released = quiet_until(at, time_zone=time_zone, start=start, end=end)
    local = at.astimezone(zone).time()

    # None exactly when the input is outside the window
    assert (released is None) is (not inside(local, start, end))
    if released is None:
        return None
    # A UTC instant, strictly later than the input, outside the window, and never later than the
    # window's length plus one DST shift
    assert released.utcoffset() == dt.timedelta(0)
    assert released > at
    assert not inside(released.astimezone(zone).time(), start, end)
    assert quiet_until(released, time_zone=time_zone, start=start, end=end) is None
    assert released - at <= window_length(start, end) + dt.timedelta(hours=1)
    # On the local wall clock it is the end of quiet hours, unless that wall time was skipped
    released_local = released.astimezone(zone)
    if exists_on_wall_clock(released_local.date(), end, zone):
        assert released_local.time() == end
    return released


@PURE
@given(case=quiet_cases())
# 01:15 EST on the night New York falls back, with quiet hours ending at 01:30: the first 01:30
# (EDT) is already past, so the end is the second one.
@example(case=(dt.datetime(2026, 11, 1, 6, 15, tzinfo=UTC), "America/New_York", dt.time(21, 0), dt.time(1, 30)))
# 02:30 does not exist on the night London springs forward.
@example(case=(dt.datetime(2026, 3, 29, 0, 59, tzinfo=UTC), "Europe/London", dt.time(21, 0), dt.time(1, 30)))
def test_quiet_until_releases_once_outside_the_window_and_never_in_the_past(
    case: tuple[dt.datetime, str, dt.time, dt.time],
) -> None:
    check_quiet_until(*case)


@PURE
@given(at=instants, time_zone=st.sampled_from(ALL_ZONES))
def test_default_quiet_hours_hold_in_every_iana_zone(at: dt.datetime, time_zone: str) -> None:
    released = quiet_until(at, time_zone=time_zone, start=dt.time(21, 0), end=dt.time(8, 0))
    local = at.astimezone(ZoneInfo(time_zone))
    assert (released is None) is not (local.hour >= 21 or local.hour < 8)
    if released is not None:
        assert at < released <= at + dt.timedelta(hours=25)
        assert released.astimezone(ZoneInfo(time_zone)).time() == dt.time(8, 0)


@PURE
@given(at=instants, time_zone=st.sampled_from(QUIRKY_ZONES), wall=minutes_of_day)
def test_an_empty_window_never_defers(at: dt.datetime, time_zone: str, wall: dt.time) -> None:
    assert quiet_until(at, time_zone=time_zone, start=wall, end=wall) is None


def test_quiet_hours_examples_with_exact_instants() -> None:
    nine_pm, eight_am = dt.time(21, 0), dt.time(8, 0)
    # 22:30 in Shanghai (14:30 UTC) waits until 08:00 Shanghai (00:00 UTC)
    assert quiet_until(
        dt.datetime(2026, 11, 23, 14, 30, tzinfo=UTC), time_zone="Asia/Shanghai", start=nine_pm, end=eight_am
    ) == dt.datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    # 02:00 in London on the night of the spring change waits until 08:00 BST, 07:00 UTC
    assert quiet_until(
        dt.datetime(2026, 3, 29, 0, 30, tzinfo=UTC), time_zone="Europe/London", start=nine_pm, end=eight_am
    ) == dt.datetime(2026, 3, 29, 7, 0, tzinfo=UTC)
    # 08:00 itself is allowed; 07:59 is not
    assert (
        quiet_until(dt.datetime(2026, 11, 24, 8, 0, tzinfo=UTC), time_zone="UTC", start=nine_pm, end=eight_am) is None
    )
    assert quiet_until(
        dt.datetime(2026, 11, 24, 7, 59, tzinfo=UTC), time_zone="UTC", start=nine_pm, end=eight_am
    ) == dt.datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


# ── metrics ─────────────────────────────────────────────────────────────────────────────────


@PURE
@given(scores=st.lists(st.integers(0, 10), min_size=1, max_size=300))
def test_nps_is_percent_promoters_minus_percent_detractors(scores: list[int]) -> None:
    value = nps(scores)
    assert value is not None
    assert -100.0 <= value <= 100.0
    promoters = 100 * sum(1 for s in scores if s >= 9) / len(scores)
    detractors = 100 * sum(1 for s in scores if s <= 6) / len(scores)
    assert abs(value - (promoters - detractors)) <= 0.05 + 1e-9  # rounded to one decimal
    assert nps(reversed(scores)) == value
    assert nps(scores * 3) == value


@PURE
@given(scores=st.lists(st.integers(1, 5), min_size=1, max_size=300))
def test_csat_is_the_percent_of_fours_and_fives(scores: list[int]) -> None:
    value = csat(scores)
    assert value is not None
    assert 0.0 <= value <= 100.0
    satisfied = 100 * sum(1 for s in scores if s >= 4) / len(scores)
    assert abs(value - satisfied) <= 0.05 + 1e-9  # rounded to one decimal
    assert csat(sorted(scores)) == value


def test_metrics_of_nothing_are_none_not_zero() -> None:
    assert nps([]) is None
    assert csat([]) is None
    assert nps(iter(())) is None


def test_metrics_at_their_edges() -> None:
    assert nps([9, 10]) == 100.0
    assert nps([0, 6]) == -100.0
    assert nps([7, 8]) == 0.0
    assert nps([10, 0, 8]) == 0.0
    assert nps([10, 10, 0]) == 33.3
    assert csat([4, 5]) == 100.0
    assert csat([1, 2, 3]) == 0.0
    assert csat([5, 1, 1]) == 33.3


# ── masking ─────────────────────────────────────────────────────────────────────────────────

LOCAL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-"
labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
emails = st.builds(
    lambda local, labels_, tld: f"{local}@{'.'.join(labels_)}.{tld}",
    st.text(LOCAL_CHARS, min_size=1, max_size=64),
    st.lists(labels, min_size=1, max_size=3),
    st.sampled_from(["com", "cn", "example", "co.uk"]),
)


@PURE
@given(raw=emails)
def test_mask_email_keeps_only_the_first_character_and_the_domain(raw: str) -> None:
    email = normalize_email(raw)
    local, _, domain = email.partition("@")
    masked = mask_email(email)
    assert masked == f"{local[0]}***@{domain}"
    masked_local = masked.partition("@")[0]
    if len(local) > 1:
        assert local not in masked_local
    # The length of the local part is hidden too
    assert mask_email(f"{local[0]}{'x' * 20}@{domain}") == masked


@st.composite
def phone_numbers(draw: st.DrawFn) -> phonenumbers.PhoneNumber:
    """Valid numbers of every region: a region's example number with its last digits redrawn."""
    region = draw(st.sampled_from(sorted(phonenumbers.SUPPORTED_REGIONS)))
    kind = draw(st.sampled_from([phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]))
    sample = phonenumbers.example_number_for_type(region, kind)
    assume(sample is not None)
    national = str(sample.national_number)
    tail = draw(st.text("0123456789", min_size=min(3, len(national)), max_size=min(3, len(national))))
    number = phonenumbers.parse(f"+{sample.country_code}{national[: -len(tail)]}{tail}", None)
    assume(phonenumbers.is_valid_number(number))
    return number


@PURE
@given(number=phone_numbers())
@example(number=phonenumbers.parse("+8613812341234", None))
def test_mask_phone_shows_seven_digits_at_most(number: phonenumbers.PhoneNumber) -> None:
    national = str(number.national_number)
    masked = mask_phone(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    shown = [c for c in masked if c.isdigit()]
    assert len(shown) <= 7
    assert len(masked) == len(national)
    assert set(masked) <= set("0123456789*")
    assert national not in masked
    if len(national) > 7:
        assert masked == national[:3] + "*" * (len(national) - 7) + national[-4:]
    else:
        assert masked.endswith(national[-2:])
        assert len(shown) == 2


def test_mask_phone_example_from_the_issue() -> None:
    assert mask_phone("+8613812341234") == "138****1234"
    assert mask_email("zhang.san@example.com") == "z***@example.com"


# ── crypto ──────────────────────────────────────────────────────────────────────────────────

keys = st.binary(min_size=32, max_size=32)
plaintexts = st.binary(max_size=512)
aads = st.binary(max_size=64)


@PURE
@given(key=keys, plaintext=plaintexts, aad=aads)
def test_seal_then_open_returns_the_plaintext_and_never_repeats_a_ciphertext(
    key: bytes, plaintext: bytes, aad: bytes
) -> None:
    sealed = seal(key, plaintext, aad=aad)
    assert open_sealed(key, sealed, aad=aad) == plaintext
    assert seal(key, plaintext, aad=aad) != sealed  # a fresh nonce every time
    if len(plaintext) >= 8:
        assert plaintext not in sealed


@PURE
@given(key=keys, plaintext=plaintexts, aad=aads, data=st.data())
def test_changing_any_byte_of_a_sealed_blob_fails(
    key: bytes, plaintext: bytes, aad: bytes, data: st.DataObject
) -> None:
    sealed = bytearray(seal(key, plaintext, aad=aad))
    position = data.draw(st.integers(0, len(sealed) - 1), label="position")
    sealed[position] ^= data.draw(st.integers(1, 255), label="flip")
    with pytest.raises(DecryptionFailed):
        open_sealed(key, bytes(sealed), aad=aad)


@PURE
@given(key=keys, plaintext=plaintexts, aad=aads, cut=st.integers(1, 64))
def test_a_truncated_blob_fails(key: bytes, plaintext: bytes, aad: bytes, cut: int) -> None:
    sealed = seal(key, plaintext, aad=aad)
    with pytest.raises(DecryptionFailed):
        open_sealed(key, sealed[: max(0, len(sealed) - cut)], aad=aad)


@PURE
@given(key=keys, other_key=keys, plaintext=plaintexts, aad=aads, other_aad=aads)
def test_the_wrong_aad_or_the_wrong_key_fails(
    key: bytes, other_key: bytes, plaintext: bytes, aad: bytes, other_aad: bytes
) -> None:
    sealed = seal(key, plaintext, aad=aad)
    if other_aad != aad:
        with pytest.raises(DecryptionFailed):
            open_sealed(key, sealed, aad=other_aad)
    if other_key != key:
        with pytest.raises(DecryptionFailed):
            open_sealed(other_key, sealed, aad=aad)


@PURE
@given(master=keys, data_key=keys, context=st.binary(max_size=32), other_context=st.binary(max_size=32))
def test_a_wrapped_data_key_unwraps_only_in_its_own_context(
    master: bytes, data_key: bytes, context: bytes, other_context: bytes
) -> None:
    provider = LocalKeyProvider.single(master)
    wrapped = provider.wrap(data_key, version=1, context=context)
    assert data_key not in wrapped
    assert provider.unwrap(wrapped, version=1, context=context) == data_key
    assert LocalKeyProvider.single(master).unwrap(wrapped, version=1, context=context) == data_key
    if other_context != context:
        with pytest.raises(DecryptionFailed):
            provider.unwrap(wrapped, version=1, context=other_context)


@PURE
@given(master=keys, other_master=keys, data_key=keys, context=st.binary(max_size=32))
def test_a_data_key_wrapped_under_one_master_key_does_not_unwrap_under_another(
    master: bytes, other_master: bytes, data_key: bytes, context: bytes
) -> None:
    assume(master != other_master)
    wrapped = LocalKeyProvider.single(master).wrap(data_key, version=1, context=context)
    with pytest.raises(DecryptionFailed):
        LocalKeyProvider.single(other_master).unwrap(wrapped, version=1, context=context)
    # Nor under another version of the same provider.
    both = LocalKeyProvider({2: other_master, 1: master}, 2)
    with pytest.raises(DecryptionFailed):
        both.unwrap(wrapped, version=2, context=context)
    assert both.unwrap(wrapped, version=1, context=context) == data_key


@PURE
@given(master=keys, other_master=keys, value=st.text(max_size=64))
def test_blind_index_is_deterministic_keyed_and_differs_per_kind(
    master: bytes, other_master: bytes, value: str
) -> None:
    keyring = Keyring(LocalKeyProvider.single(master), master)
    index = keyring.blind_index("email", value)
    assert index == Keyring(LocalKeyProvider.single(master), master).blind_index("email", value)
    assert len(index) == 64
    assert set(index) <= set("0123456789abcdef")
    assert index != keyring.blind_index("phone", value)
    assert index != hashlib.sha256(value.encode()).hexdigest()
    if other_master != master:
        assert index != Keyring(LocalKeyProvider.single(master), other_master).blind_index("email", value)
    # The master key's current version plays no part: only the index root does.
    rotated = Keyring(LocalKeyProvider({2: other_master, 1: master}, 2), master)
    assert rotated.blind_index("email", value) == index


@PURE
@given(master=keys, value=st.text(max_size=32), other=st.text(max_size=32))
def test_blind_index_tells_values_apart(master: bytes, value: str, other: str) -> None:
    keyring = Keyring(LocalKeyProvider.single(master), master)
    assert (keyring.blind_index("email", value) == keyring.blind_index("email", other)) is (value == other)


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_a_master_key_of_the_wrong_length_is_refused(length: int) -> None:
    with pytest.raises(ConfigurationError):
        LocalKeyProvider.single(bytes(length))
