"""Scrubbing what customers and agents type: card numbers, security codes, resident ID numbers,
phones and emails masked; amounts, dates and numbers that fail the checks kept. Concrete examples
first, then a seeded corpus of thousands of valid numbers and near misses.

The corpus's oracle is python-stdnum and phonenumbers used directly, never the scrubber's own
helpers, so a mistake in the scrubber's checks shows up here."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import phonenumbers
import pytest
from fastapi.testclient import TestClient
from stdnum import luhn
from stdnum.cn import ric

from followup.kernel.time import ManualClock
from followup.privacy.scrubbing import PAYMENT_AND_IDENTITY, Kind, scrub, scrub_and_count
from followup.runtime import Runtime
from followup.worker import Worker
from tests.builders.customers import make_customer
from tests.builders.events import transfer
from tests.builders.strategies import make_strategy
from tests.builders.surveys import make_survey
from tests.conftest import SmtpSink
from tests.helpers import every_stored_value, survey_path, text_body

# -- concrete examples -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        ("card 4111 1111 1111 1111 please", "card **** **** **** 1111 please", Kind.CARD),  # Visa
        ("Visa 4012888888881881 was charged", "Visa **** **** **** 1881 was charged", Kind.CARD),
        ("MC 2221-0000-0000-0009 twice", "MC **** **** **** 0009 twice", Kind.CARD),  # Mastercard 2-series
        ("5555 5555 5555 4444", "**** **** **** 4444", Kind.CARD),  # Mastercard 51–55
        (
            "我的卡号是6222021234567890128，扣了两次",
            "我的卡号是**** **** **** 0128，扣了两次",
            Kind.CARD,
        ),  # UnionPay 19
        ("银联卡 6212 3456 7890 1232 退款了吗", "银联卡 **** **** **** 1232 退款了吗", Kind.CARD),  # UnionPay 16
        ("卡号：６２２２　０２１２　３４５６　７８９０　１２８", "卡号：**** **** **** 0128", Kind.CARD),  # full width
        ("卡号６２２２－０２１２－３４５６－７８９０－１２８。", "卡号**** **** **** 0128。", Kind.CARD),
        ("Amex 3782 822463 10005 ok", "Amex **** **** **** 0005 ok", Kind.CARD),
        ("on the 30th 4111 1111 1111 1111 got declined", "on the 30th **** **** **** 1111 got declined", Kind.CARD),
        ("30 4111 1111 1111 1111 got declined", "30 **** **** **** 1111 got declined", Kind.CARD),
        ("4111 1111 1111 1111 12/28", "**** **** **** 1111 12/28", Kind.CARD),
        ("身份证号11010519491231002X，请核实", "身份证号**************002X，请核实", Kind.RESIDENT_ID),
        ("ID 110105 19491231 002x here", "ID **************002X here", Kind.RESIDENT_ID),
        ("身份证：３６０４２６１９９１０１０１００７１", "身份证：**************0071", Kind.RESIDENT_ID),
        ("打我电话13812345678", "打我电话*******5678", Kind.PHONE),
        ("call me on +86 138 1234 5678 tonight", "call me on *******5678 tonight", Kind.PHONE),
        ("手机：１３９－００１３－８０００", "手机：*******8000", Kind.PHONE),
        ("座机 010-62345678", "座机 *******5678", Kind.PHONE),
        ("my US number is +1 415 555 2671", "my US number is *******2671", Kind.PHONE),
        ("邮箱zhang.san@example.com谢谢", "邮箱z***@example.com谢谢", Kind.EMAIL),
        ("mail 13812345678@163.com", "mail 1***@163.com", Kind.EMAIL),
        ("write to li_wei+wallet@mail.example.cn.", "write to l***@mail.example.cn.", Kind.EMAIL),
    ],
)
def test_a_value_is_masked(text: str, expected: str, kind: Kind) -> None:
    scrubbed = scrub_and_count(text)

    assert scrubbed.text == expected
    assert scrubbed.masked == Counter({kind: 1})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CVV: 123", "CVV: ***"),
        ("cvv2 is 4567", "cvv2 is ***"),
        ("CVC 987 exp 12/28", "CVC *** exp 12/28"),
        ("the security code was 321", "the security code was ***"),
        ("安全码是 456", "安全码是 ***"),
        ("卡背面安全码：７８９", "卡背面安全码：***"),
        ("验证码1234别告诉别人", "验证码***别告诉别人"),
        ("123 is my CVV", "*** is my CVV"),
        ("背面三位数 852（安全码）", "背面三位数 ***（安全码）"),
    ],
)
def test_a_security_code_next_to_its_keyword_is_dropped(text: str, expected: str) -> None:
    scrubbed = scrub_and_count(text)

    assert scrubbed.text == expected
    assert scrubbed.masked == Counter({Kind.CVV: 1})


def test_a_whole_message_masks_each_value_once() -> None:
    text = (
        "我的卡 6222 0212 3456 7890 128，CVV 123，身份证11010519491231002X，"
        "电话 13812345678，邮箱 wang.wu@example.cn，订单 DD20261130001234 金额 ¥1,234.56"
    )

    scrubbed = scrub_and_count(text)

    assert scrubbed.text == (
        "我的卡 **** **** **** 0128，CVV ***，身份证**************002X，"
        "电话 *******5678，邮箱 w***@example.cn，订单 DD20261130001234 金额 ¥1,234.56"
    )
    assert scrubbed.masked == Counter({Kind.CARD: 1, Kind.CVV: 1, Kind.RESIDENT_ID: 1, Kind.PHONE: 1, Kind.EMAIL: 1})


@pytest.mark.parametrize(
    "text",
    [
        "退款 ¥1,234.56 还没到",
        "paid $12,345.00 on 2026-11-30",
        "2026年11月30日 12:34:56 扣款",
        "at 2026-11-30T12:34:56Z and 2026/11/30",
        "订单号 DD20261130001234",
        "order 2026113012345678 is late",
        "order 2026113012 is late",  # ten digits: a Guangzhou landline without its 0, or an order
        "4111 1111 1111 1112 fails Luhn",
        "6222021234567890127 fails Luhn too",
        "11010519491231002Y",
        "ID 110105194912310021 has the wrong check digit",
        "ID 110105194913310025: no 13th month",
        "call our hotline 400-820-8820 or 95188",
        "CVV 在卡背面，验证码收不到",
        "退款 3 个工作日内到账，共 128 元",
        "timestamp 1764547200000",
        "version 1.2.3.4, tracking SF1234567890123",
        "parcel SF650130183801",  # twelve digits a Maestro card could have, but after letters
        "6219 5391 4887 2529 is mistyped",  # its first twelve digits pass Luhn: no part of a number is tried
        "4759 5673 8094 4254 474",  # nor its last fifteen
    ],
)
def test_what_fails_the_checks_is_kept(text: str) -> None:
    scrubbed = scrub_and_count(text)

    assert scrubbed.text == text
    assert scrubbed.masked == Counter()


def test_a_reply_to_the_customer_keeps_our_contacts_and_loses_a_card() -> None:
    text = "请致电 13812345678 或写信 help@wallet.example，卡 4111 1111 1111 1111 已冻结"

    assert scrub(text, kinds=PAYMENT_AND_IDENTITY) == (
        "请致电 13812345678 或写信 help@wallet.example，卡 **** **** **** 1111 已冻结"
    )


def test_empty_and_plain_text_come_back_as_they_were() -> None:
    assert scrub("") == ""
    assert scrub("服务很好，谢谢！Great service.") == "服务很好，谢谢！Great service."


# -- the corpus ------------------------------------------------------------------------------------

SEED = 20261130
FULL_WIDTH = str.maketrans("0123456789 -", "０１２３４５６７８９　－")
SENTENCES = (
    "{}",
    "我的卡号是{}，请帮我查一下",
    "卡{}被扣了两次钱",
    "退款退到{}了吗？",
    "card {} was charged twice",
    "Please refund to {} asap.",
    "number: {}\n谢谢",
    "({})",
)
# (first digits, lengths) a network issues; the card prefixes the contract names first.
NETWORKS = (
    (("4",), (13, 16, 19)),  # Visa
    (("51", "52", "53", "54", "55"), (16,)),  # Mastercard
    (tuple(str(n) for n in range(2221, 2721)), (16,)),  # Mastercard 2-series
    (("62",), (16, 17, 18, 19)),  # UnionPay
    (("34", "37"), (15,)),  # American Express
    (tuple(str(n) for n in range(3528, 3590)), (16,)),  # JCB
    (("6011", "65"), (16,)),  # Discover
    (("36",), (14,)),  # Diners Club
    (("50", "56", "58", "67"), (12, 13, 15, 19)),  # Maestro
)
REGIONS = ("110105", "310104", "440305", "620102", "650102", "350203", "510107", "330106", "420106", "610113")


def _card(rng: random.Random) -> str:
    prefixes, lengths = rng.choice(NETWORKS)
    prefix, length = rng.choice(prefixes), rng.choice(lengths)
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    return body + luhn.calc_check_digit(body)


def _resident_id(rng: random.Random) -> str:
    body = f"{rng.choice(REGIONS)}{rng.randint(1940, 2012)}{rng.randint(1, 12):02}{rng.randint(1, 28):02}"
    body += f"{rng.randint(0, 999):03}"
    return body + ric.calc_check_digit(body + "0")


def _grouped(digits: str, separator: str) -> str:
    return separator.join(digits[i : i + 4] for i in range(0, len(digits), 4))


def _written(rng: random.Random, digits: str, *, groups: bool = True) -> str:
    """A number as people type it: plain, in fours with spaces or dashes, in full width."""
    form = rng.randrange(5) if groups else rng.choice((0, 3))
    text = {0: digits, 1: _grouped(digits, " "), 2: _grouped(digits, "-"), 3: digits, 4: _grouped(digits, " ")}[form]
    return text.translate(FULL_WIDTH) if form >= 3 else text


def _phone(rng: random.Random) -> str:
    while True:
        digits = rng.choice(("13", "15", "17", "18", "19")) + "".join(rng.choice("0123456789") for _ in range(9))
        if phonenumbers.is_valid_number(phonenumbers.parse(digits, "CN")):
            break
    return rng.choice(
        (digits, f"+86 {digits[:3]} {digits[3:7]} {digits[7:]}", f"{digits[:3]}-{digits[3:7]}-{digits[7:]}")
    )


def _compact(text: str) -> str:
    return "".join(
        c for c in text.translate(str.maketrans("０１２３４５６７８９", "0123456789")) if c.isalnum()
    ).upper()


@dataclass
class Tally:
    total: int = 0
    failures: int = 0


def _valid_values(rng: random.Random) -> list[tuple[str, str]]:
    """(the value as written, what must not survive in clear)."""
    values: list[tuple[str, str]] = []
    for _ in range(4000):
        digits = _card(rng)
        values.append((_written(rng, digits), digits))
    for _ in range(2000):
        number = _resident_id(rng)
        written = rng.choice((number, number.lower(), f"{number[:6]} {number[6:14]} {number[14:]}"))
        values.append((written.translate(FULL_WIDTH) if rng.random() < 0.2 else written, number))
    for _ in range(500):
        phone = _phone(rng)
        values.append((phone, _compact(phone)[-11:]))
    for n in range(300):
        email = f"{rng.choice(('zhang', 'li.wei', 'w_m', 'c9'))}{n}@{rng.choice(('example.com', 'qq.example', 'mail.example.cn'))}"
        values.append((email, email))
    return values


def _near_misses(rng: random.Random) -> list[str]:
    misses: list[str] = []
    for _ in range(4000):  # a card number whose last digit is wrong
        digits = _card(rng)
        wrong = rng.choice([d for d in "0123456789" if d != digits[-1]])
        assert not luhn.is_valid(digits[:-1] + wrong)
        misses.append(_written(rng, digits[:-1] + wrong))
    for _ in range(2000):  # an ID number whose check digit is wrong (and that is no card number either)
        number = _resident_id(rng)
        wrong = rng.choice(
            [d for d in "0123456789X" if d != number[-1] and (d == "X" or not luhn.is_valid(number[:-1] + d))]
        )
        assert not ric.is_valid(number[:-1] + wrong)
        misses.append(_written(rng, number[:-1] + wrong, groups=False))
    makers: tuple[Callable[[], str], ...] = (
        lambda: f"¥{rng.randint(1, 99999):,}.{rng.randint(0, 99):02}",
        lambda: f"￥{rng.randint(1, 9_999_999)}.{rng.randint(0, 99):02} 元",
        lambda: f"{rng.randint(2000, 2030)}-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}",
        lambda: f"{rng.randint(2000, 2030)}年{rng.randint(1, 12)}月{rng.randint(1, 28)}日",
        lambda: (
            f"{rng.randint(2020, 2030)}-{rng.randint(1, 12):02}-{rng.randint(1, 28):02} "
            f"{rng.randint(0, 23):02}:{rng.randint(0, 59):02}:{rng.randint(0, 59):02}"
        ),
        lambda: (
            f"{rng.randint(2020, 2030)}{rng.randint(1, 12):02}{rng.randint(1, 28):02}"
            f"{rng.randint(0, 23):02}{rng.randint(0, 59):02}{rng.randint(0, 59):02}"
        ),
        lambda: str(rng.randint(1_600_000_000_000, 1_900_000_000_000)),  # a timestamp in milliseconds
        lambda: f"DD{rng.randint(2020, 2030)}{rng.randint(10**9, 10**10 - 1)}",
        lambda: (
            f"{rng.randint(2020, 2030)}{rng.randint(1, 12):02}{rng.randint(1, 28):02}{rng.randint(10**7, 10**8 - 1)}"
        ),
        lambda: f"ORD-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
        lambda: f"SF{rng.randint(10**11, 10**12 - 1)}",  # a parcel's tracking number
    )
    for n in range(3000):
        misses.append(makers[n % len(makers)]())
    return misses


def test_a_generated_corpus_keeps_no_valid_number_in_clear_and_few_false_alarms() -> None:
    rng = random.Random(SEED)
    valid = Tally()
    for written, value in _valid_values(rng):
        text = rng.choice(SENTENCES).format(written)
        scrubbed = scrub(text)
        valid.total += 1
        if written in scrubbed or _compact(value) in _compact(scrubbed):
            valid.failures += 1
            print("in clear:", text, "->", scrubbed)
    kept = Tally()
    for miss in _near_misses(rng):
        text = rng.choice(SENTENCES).format(miss)
        kept.total += 1
        if scrub(text) != text:
            kept.failures += 1
            print("false alarm:", text, "->", scrub(text))
    rate = kept.failures / kept.total
    # `pytest tests/test_scrubbing.py -k corpus -s` prints the figures docs/privacy.md quotes.
    print(
        f"corpus: {valid.total} valid values, {valid.failures} in clear; {kept.total} near misses, {kept.failures} changed ({rate:.2%})"
    )

    assert valid.failures == 0
    assert rate <= 0.005


# -- stored through the app ------------------------------------------------------------------------

CARD = "6222 0212 3456 7890 128"  # UnionPay, 19 digits
CARD_DIGITS = "6222021234567890128"
ID_NUMBER = "11010519491231002X"
PHONE = "13812345678"
EMAIL = "wang.wu.private@example.cn"
CUSTOMER_SAID = f"退款没到，卡号 {CARD}，CVV 123，身份证{ID_NUMBER}，电话 {PHONE}，邮箱 {EMAIL}，金额 ¥1,234.56"
SCRUBBED = (
    "退款没到，卡号 **** **** **** 0128，CVV ***，身份证**************002X，电话 *******5678，"
    "邮箱 w***@example.cn，金额 ¥1,234.56"
)
IN_CLEAR = (CARD, CARD_DIGITS, ID_NUMBER, PHONE, EMAIL, "CVV 123")


def assert_nowhere_in_clear(haystack: str | bytes) -> None:
    data = haystack.encode() if isinstance(haystack, str) else haystack
    found = [value for value in IN_CLEAR if value.encode() in data or value.encode().hex().encode() in data.lower()]
    assert found == []


def _answered_detractor(runtime: Runtime, api: TestClient, smtp: SmtpSink, clock: ManualClock) -> str:
    """A customer invited by email answers NPS 2: a detractor case opens. The survey link's path."""
    make_customer(runtime, "c1")
    make_survey(runtime)
    make_strategy(runtime)
    assert api.post("/api/v1/events", json={"events": [transfer("e1", "c1")]}).json()["accepted"] == 1
    clock.advance(dt.timedelta(minutes=31))
    Worker(runtime).run_until_idle()
    path = survey_path(smtp.wait_for(1)[-1])
    assert api.post(path, data={"step": "rating", "nps": "2"}, follow_redirects=False).status_code == 303
    return path


def test_a_comment_on_the_survey_page_is_stored_scrubbed(
    runtime: Runtime, api: TestClient, smtp: SmtpSink, clock: ManualClock
) -> None:
    path = _answered_detractor(runtime, api, smtp, clock)

    done = api.post(path, data={"step": "details", "comment": CUSTOMER_SAID})

    assert done.status_code == 200
    [response] = api.get("/api/v1/responses").json()["items"]
    assert response["answers"] == {"nps": 2, "comment": SCRUBBED}
    assert_nowhere_in_clear(every_stored_value(runtime))


def test_an_agents_note_resolution_and_closing_words_are_stored_scrubbed(
    runtime: Runtime, api: TestClient, smtp: SmtpSink, clock: ManualClock
) -> None:
    _answered_detractor(runtime, api, smtp, clock)
    Worker(runtime).run_until_idle()
    [case] = api.get("/api/v1/cases").json()["items"]
    url = f"/api/v1/cases/{case['id']}"

    note = api.post(f"{url}/notes", json={"text": f"客户说：{CUSTOMER_SAID}"})
    resolved = api.post(
        f"{url}/resolve",
        json={"code": "refunded", "root_cause": f"card {CARD} declined", "action": f"refund to {CARD}, told {PHONE}"},
    )
    closed = api.post(f"{url}/close", json={"resolution": f"refunded {CARD}; ID {ID_NUMBER} checked"})

    assert note.status_code == 201
    assert note.json()["text"] == f"客户说：{SCRUBBED}"
    assert (resolved.status_code, closed.status_code) == (200, 200)
    timeline = {event["kind"]: event["text"] for event in api.get(url).json()["timeline"]}
    assert timeline["note"] == f"客户说：{SCRUBBED}"
    assert timeline["resolved"] == (
        "Root cause: card **** **** **** 0128 declined\nWhat was done: refund to **** **** **** 0128, told *******5678"
    )
    assert timeline["closed"] == "refunded **** **** **** 0128; ID **************002X checked"
    audit = api.get("/api/v1/audit").json()["items"]
    [closing] = [entry for entry in audit if entry["event"] == "case.closed"]
    assert closing["new"]["resolution"] == "sealed", "the audit line holds a reference, the words are on the timeline"
    assert_nowhere_in_clear(every_stored_value(runtime))


def test_an_agents_reply_keeps_our_hotline_but_loses_a_pasted_card_number(
    runtime: Runtime, api: TestClient, smtp: SmtpSink, clock: ManualClock
) -> None:
    _answered_detractor(runtime, api, smtp, clock)
    Worker(runtime).run_until_idle()
    [case] = api.get("/api/v1/cases").json()["items"]

    replied = api.post(
        f"/api/v1/cases/{case['id']}/reply", json={"text": f"已退款到卡 {CARD}，有问题请致电 400-820-8820"}
    )
    smtp.clear()
    Worker(runtime).run_until_idle()

    assert replied.status_code == 200, replied.text
    [reply] = [event for event in replied.json()["timeline"] if event["kind"] == "reply"]
    assert reply["text"] == "已退款到卡 **** **** **** 0128，有问题请致电 400-820-8820"
    [email] = smtp.wait_for(1)
    assert "已退款到卡 **** **** **** 0128，有问题请致电 400-820-8820" in text_body(email)
    assert_nowhere_in_clear(every_stored_value(runtime))
