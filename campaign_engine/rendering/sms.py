"""SMS text: composing the final message and counting what a provider bills.

Counting follows the providers (Aliyun, Tencent, Huawei): the signature counts,
any character outside GSM-7 makes the whole text UCS-2 (every Chinese text).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Longest SMS a provider accepts, in characters, signature included.
MAX_SMS_CHARS = 500

_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: Extension table: each is sent as ESC + char, so it takes 2 of the 160.
_GSM7_EXTENSION = frozenset("|^€{}[]~\\\f")
_SENTENCE_END = tuple("。！？.!?")


@dataclass(frozen=True)
class SmsLength:
    """How long an SMS is as billed: counted characters, encoding and parts."""

    chars: int
    encoding: str  # "GSM-7" or "UCS-2"
    segments: int


def measure_sms(text: str) -> SmsLength:
    """Count an SMS's characters, encoding and billed parts."""
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENSION for c in text):
        chars = sum(2 if c in _GSM7_EXTENSION else 1 for c in text)
        encoding, single, part = "GSM-7", 160, 153
    else:
        # UTF-16 code units: a character outside the BMP (most emoji) takes 2.
        chars = sum(2 if ord(c) > 0xFFFF else 1 for c in text)
        encoding, single, part = "UCS-2", 70, 67
    if chars == 0:
        segments = 0
    elif chars <= single:
        segments = 1
    else:
        segments = -(-chars // part)
    return SmsLength(chars=chars, encoding=encoding, segments=segments)


def compose_sms(body: str, *, signature: str, opt_out: str | None) -> str:
    """Build the SMS as sent: `【signature】body` plus the opt-out line when given.

    The signature is not repeated when the body already starts with it, nor the
    opt-out when the body already ends with it. The opt-out follows the body
    directly when the body ends a sentence (。！？.!?); otherwise a `。` is put
    between them, so `…到期` + `回复TD退订` reads `…到期。回复TD退订`.
    Raises ValueError for an empty body or a text over MAX_SMS_CHARS characters.
    """
    text = body.strip()
    if not text:
        raise ValueError("SMS body is empty")
    if signature and not text.startswith(signature):
        text = signature + text
    if opt_out and not text.endswith(opt_out):
        text += ("" if text.endswith(_SENTENCE_END) else "。") + opt_out
    if len(text) > MAX_SMS_CHARS:
        raise ValueError(f"SMS is {len(text)} characters, over the limit of {MAX_SMS_CHARS}")
    return text
