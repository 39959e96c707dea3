"""What an SMS says (compose), what it costs (segments) and what a reply means (read_reply)."""

from __future__ import annotations

import pytest

from followup.channels.sms.replies import MAX_REPLY_CHARS, Comment, Keyword, Reply, Score, read_reply
from followup.channels.sms.text import MAX_SEGMENTS, check_segments, compose, segments

LINK = "https://fu.example.cn/s/Ab3"

# compose


def test_mainland_number_gets_the_sign_the_link_line_and_the_chinese_opt_out() -> None:
    text = compose("您上次的转账顺利吗？回复0-10分", link=LINK, locale="zh-CN", to="+8613812341234", sign="好钱包")

    assert text == f"【好钱包】您上次的转账顺利吗？回复0-10分\n{LINK}\n回T退订"


def test_mainland_number_without_a_sign_gets_no_prefix_but_still_the_opt_out() -> None:
    text = compose("感谢使用扫码支付", link=None, locale="zh-CN", to="+8613812341234", sign=None)

    assert text == "感谢使用扫码支付\n回T退订"


@pytest.mark.parametrize("locale", ["en", "zh-CN", "zh-HK"])
def test_other_numbers_end_with_reply_stop_whatever_the_language(locale: str) -> None:
    text = compose("How was your transfer?", link=LINK, locale=locale, to="+85291234567", sign="GoodWallet")

    assert text == f"How was your transfer?\n{LINK}\nReply STOP to opt out"
    assert "【" not in text


def test_compose_trims_the_body_so_the_lines_stay_clean() -> None:
    text = compose("  Rate us \n", link=None, locale="en", to="+14155550100", sign=None)

    assert text == "Rate us\nReply STOP to opt out"


# segments


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", ("GSM-7", 1), id="empty is still one"),
        pytest.param("a" * 160, ("GSM-7", 1), id="160 GSM-7"),
        pytest.param("a" * 161, ("GSM-7", 2), id="161 GSM-7"),
        pytest.param("a" * 306, ("GSM-7", 2), id="2 x 153"),
        pytest.param("a" * 307, ("GSM-7", 3), id="2 x 153 + 1"),
        pytest.param("€" * 80, ("GSM-7", 1), id="80 euro signs are 160 septets"),
        pytest.param("€" * 80 + "a", ("GSM-7", 2), id="80 euro signs and one letter"),
        pytest.param("a" * 159 + "{", ("GSM-7", 2), id="an extension character at the end counts twice"),
        pytest.param(
            "Ä Ö Ñ Ü ä ö ñ ü à é è ù ì ò Ç Ø Å Æ ß @ £ ¥ § ¿ ¡ Δ Ω", ("GSM-7", 1), id="the basic set beyond ASCII"
        ),
        pytest.param("中" * 70, ("UCS-2", 1), id="70 UCS-2"),
        pytest.param("中" * 71, ("UCS-2", 2), id="71 UCS-2"),
        pytest.param("中" * 134, ("UCS-2", 2), id="2 x 67"),
        pytest.param("中" * 135, ("UCS-2", 3), id="2 x 67 + 1"),
        pytest.param("a" * 159 + "中", ("UCS-2", 3), id="one Chinese character turns all into UCS-2"),
        pytest.param("😀" * 35, ("UCS-2", 1), id="35 emoji are 70 units"),
        pytest.param("😀" * 35 + "a", ("UCS-2", 2), id="an emoji is two units"),
        pytest.param("ç", ("UCS-2", 1), id="small c cedilla is not in the basic set"),
    ],
)
def test_segments(text: str, expected: tuple[str, int]) -> None:
    assert segments(text) == expected


def test_an_extension_character_is_not_split_across_two_segments() -> None:
    # 152 letters leave one septet in the first segment; the euro sign needs two, so it opens the second.
    assert segments("a" * 152 + "€" + "a" * 151) == ("GSM-7", 2)
    assert segments("a" * 152 + "€" + "a" * 152) == ("GSM-7", 3)


def test_an_emoji_is_not_split_across_two_segments() -> None:
    assert segments("中" * 66 + "😀" + "中" * 65) == ("UCS-2", 2)
    assert segments("中" * 66 + "😀" + "中" * 66) == ("UCS-2", 3)


def test_check_segments_passes_ten_segments() -> None:
    assert check_segments("a" * 153 * MAX_SEGMENTS) == ("GSM-7", 10)
    assert check_segments("中" * 67 * MAX_SEGMENTS) == ("UCS-2", 10)


def test_check_segments_refuses_eleven_with_a_sentence_that_does_not_quote_the_text() -> None:
    text = "转账" * 336  # 672 UTF-16 units: 11 segments of 67

    with pytest.raises(ValueError, match="needs 11 segments") as caught:
        check_segments(text)

    assert "at most 10" in str(caught.value)
    assert "转账" not in str(caught.value)


# read_reply


@pytest.mark.parametrize(
    "text",
    [
        "TD",
        "td",
        "T",
        "退订",
        "N",
        "STOP",
        "stop",
        "Stop.",
        "ＳＴＯＰ",
        "ｓｔｏｐ",
        "ｓｔｏｐ！",
        " unsubscribe ",
        "CANCEL",
        "End",
        "QUIT",
        "STOPALL",
        "退订。",
        "TD!",
    ],
)
def test_stop_keywords(text: str) -> None:
    assert read_reply(text) == Keyword(kind="stop")


@pytest.mark.parametrize("text", ["HELP", "help?", "帮助", "ＨＥＬＰ"])
def test_help_keywords(text: str) -> None:
    assert read_reply(text) == Keyword(kind="help")


@pytest.mark.parametrize("text", ["START", "start", "订阅", "订阅！"])
def test_start_keywords(text: str) -> None:
    assert read_reply(text) == Keyword(kind="start")


@pytest.mark.parametrize("text", ["please stop", "STOP it now", "不要退订", "TDD", "stop stop"])
def test_a_keyword_inside_a_sentence_is_a_comment(text: str) -> None:
    assert read_reply(text) == Comment(text=text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9", Score(9, "")),
        ("９", Score(9, "")),
        ("0", Score(0, "")),
        ("10", Score(10, "")),
        ("１０", Score(10, "")),
        ("9分", Score(9, "")),
        ("9 分", Score(9, "")),
        ("10 thanks", Score(10, "thanks")),
        ("10分，很好用", Score(10, "很好用")),
        ("８分。转账太慢了", Score(8, "转账太慢了")),
        ("7 - the app froze twice", Score(7, "the app froze twice")),
        ("5星", Score(5, "星")),
        (" 6 ", Score(6, "")),
    ],
)
def test_scores(text: str, expected: Reply) -> None:
    assert read_reply(text) == expected


@pytest.mark.parametrize("text", ["11", "100", "１１", "9.5", "９．５", "-1", "score: 9", "十分满意", "010"])
def test_numbers_that_are_not_a_score_are_comments(text: str) -> None:
    assert read_reply(text) == Comment(text=text)


def test_anything_else_is_a_comment() -> None:
    assert read_reply("  转账一直失败，请联系我  ") == Comment(text="转账一直失败，请联系我")


def test_a_long_reply_is_cut_to_the_bound_before_it_is_read() -> None:
    assert read_reply("很" * 5000) == Comment(text="很" * MAX_REPLY_CHARS)
    assert read_reply("9 " + "好" * 5000) == Score(9, "好" * (MAX_REPLY_CHARS - 2))
