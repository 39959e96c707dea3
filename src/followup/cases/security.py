"""Does a comment raise a security concern? Pure keyword matching over Chinese and English.

Deliberately broad: a false alarm costs an agent a minute, a missed account takeover costs the
customer their money.
"""

from __future__ import annotations

import re

_ZH = (
    "盗刷",
    "被盗",
    "盗号",
    "不是我本人",
    "不是本人操作",
    "非本人",
    "没有授权",
    "未授权",
    "诈骗",
    "骗子",
    "被骗",
    "账号被",
    "账户被",
    "异常登录",
    "陌生设备",
    "冻结我的",
    "钓鱼",
)
_EN = re.compile(
    r"\b(unauthori[sz]ed|fraud\w*|hack(ed|er|ing)?|stolen|scam(med)?|phishing|compromised|"
    r"not me|wasn'?t me|didn'?t (make|authori[sz]e)|identity theft|someone else (used|logged))\b",
    re.IGNORECASE,
)


def raises_security_concern(text: str) -> bool:
    return any(word in text for word in _ZH) or bool(_EN.search(text))
