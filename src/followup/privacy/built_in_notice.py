# The notice is prose: a paragraph is one line of the text, as customers read it.
# ruff: noqa: E501
"""The notice shown until the wallet publishes its own: what followup keeps about a customer, why,
and how to say no. Its version is FOLLOWUP_PRIVACY_NOTICE_VERSION.

A wallet should publish its own notice (`PUT /api/v1/privacy/notices/{version}`) naming itself,
its contact address and its retention periods, which this text cannot know. This text may be
improved in a later release of followup under the same version; the hash each consent records
tells which words were shown.
"""

from __future__ import annotations

_WRITTEN = {
    "zh-CN": """# 回访与反馈隐私说明

我们使用回访系统在您使用钱包之后（例如付款、转账、充值或首次使用某项功能之后）邀请您评价我们的服务，处理您反映的问题，并在您愿意时邀请您参加访谈。本说明介绍这一系统保存哪些信息、为什么保存，以及您如何选择。

## 我们保存的信息

- 您在钱包中的客户编号、语言和时区，以及用于决定是否邀请您的少量属性（例如会员等级）。
- 联系方式：电子邮箱、手机号码和应用推送标识。它们经过加密保存，只在发送消息时解密。
- 钱包发来的事件：事件类型、时间和金额等信息，用于判断何时请您评价。
- 我们发给您的消息及其送达情况，您的评分、选项和留言，以及由此产生的积分和客服工单。
- 您对每一类用途、每一个渠道给予或撤回同意的记录：何时、通过什么方式、依据哪一版本的说明。

## 我们为什么使用这些信息

- 反馈（feedback）：邀请您评价服务。只有在您同意后我们才会这样做。
- 服务（service）：就您本人的问题或账户安全与您联系，例如回复您的反馈或请您确认一次异常登录。默认开启，您可以随时关闭。
- 研究（research）：邀请您参加访谈或用户研究。只有在您同意后我们才会这样做。

我们不会出售这些信息，也不会用它们做广告。

## 您的选择

- 每封邮件都附有退订链接；回复短信「TD」或「STOP」即可停止短信；也可以在钱包应用的隐私设置中随时更改。撤回同意与给予同意一样简单，并在下一条消息发送之前生效。
- 您可以请钱包向您展示、导出或删除这些信息。删除时，用于加密您的联系方式和留言的密钥会被销毁，备份中的副本也随之无法读取。

## 本说明的更新

说明更新后，新的版本会公布在此页面。如果新版本改变了某项用途，我们会在再次就该用途联系您之前重新征求您的同意。
""",
    "en": """# Privacy notice for follow-ups and feedback

After you use the wallet (a payment, a transfer, a top-up, the first use of a feature), our follow-up system may invite you to tell us how it went, follow up on problems you report, and, if you wish, invite you to an interview. This notice says what the system keeps, why, and what you can choose.

## What we keep

- Your customer number in the wallet, your language and time zone, and a few attributes used to decide whether to invite you (such as your membership tier).
- How to reach you: email address, phone number and app push tokens. They are stored encrypted and opened only to send a message.
- Events the wallet reports: their type, time and amount, used to decide when to ask for your feedback.
- The messages we send you and whether they arrived; your ratings, choices and comments; and the points and support cases that come from them.
- A record of each consent you give or withdraw, per purpose and channel: when, how, and under which version of this notice.

## Why we use it

- Feedback: inviting you to rate our service. Only with your consent.
- Service: contacting you about your own case or your account's safety, such as a reply to your feedback or a request to confirm an unusual sign-in. On unless you turn it off.
- Research: inviting you to interviews and user research. Only with your consent.

We do not sell this information or use it for advertising.

## Your choices

- Every email has an unsubscribe link; reply STOP to a text message to stop texts; or change your choices in the wallet app's privacy settings at any time. Withdrawing is as easy as giving, and takes effect before the next message is sent.
- You can ask the wallet to show you, export or delete this information. Deleting it destroys the key your contact details and comments are encrypted under, so copies in backups can no longer be read either.

## Changes to this notice

New versions are published on this page. If a new version changes what a purpose covers, we ask for your consent again before contacting you for that purpose.
""",
}

# As a published notice is stored: without the whitespace around it, which the API strips from every text.
BUILT_IN_TEXT: dict[str, str] = {locale: text.strip() for locale, text in _WRITTEN.items()}
