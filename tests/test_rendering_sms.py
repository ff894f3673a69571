import pytest

from campaign_engine.rendering.sms import MAX_SMS_CHARS, SmsLength, compose_sms, measure_sms


def test_measure_sms_counts_empty_text_as_no_segment():
    assert measure_sms("") == SmsLength(chars=0, encoding="GSM-7", segments=0)


@pytest.mark.parametrize(("length", "segments"), [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3)])
def test_measure_sms_splits_gsm7_at_160_then_153(length, segments):
    assert measure_sms("a" * length) == SmsLength(length, "GSM-7", segments)


@pytest.mark.parametrize(("length", "segments"), [(70, 1), (71, 2), (134, 2), (135, 3)])
def test_measure_sms_splits_ucs2_at_70_then_67(length, segments):
    assert measure_sms("存" * length) == SmsLength(length, "UCS-2", segments)


def test_measure_sms_counts_gsm7_extension_chars_twice():
    assert measure_sms("|^€{}[]~\\") == SmsLength(18, "GSM-7", 1)


def test_measure_sms_splits_when_extension_chars_cross_160():
    assert measure_sms("a" * 158 + "€").segments == 1
    assert measure_sms("a" * 159 + "€").segments == 2


def test_measure_sms_keeps_gsm7_for_accented_and_yen():
    assert measure_sms("Café ¥100 @home").encoding == "GSM-7"


def test_measure_sms_uses_ucs2_when_any_char_is_chinese():
    assert measure_sms("a" * 100 + "。") == SmsLength(101, "UCS-2", 2)


def test_measure_sms_counts_emoji_as_two():
    assert measure_sms("🎉") == SmsLength(2, "UCS-2", 1)
    assert measure_sms("存" * 69 + "🎉").segments == 2


def test_compose_sms_adds_signature_and_opt_out():
    text = compose_sms("  您的存款即将到期。\n", signature="【XX银行】", opt_out="回复TD退订")
    assert text == "【XX银行】您的存款即将到期。回复TD退订"


def test_compose_sms_adds_full_stop_before_opt_out_when_body_unpunctuated():
    assert compose_sms("您的存款即将到期", signature="【XX银行】", opt_out="回复TD退订") == (
        "【XX银行】您的存款即将到期。回复TD退订")


def test_compose_sms_does_not_repeat_signature_or_opt_out():
    body = "【XX银行】您的存款即将到期。回复TD退订"
    assert compose_sms(body, signature="【XX银行】", opt_out="回复TD退订") == body


def test_compose_sms_omits_opt_out_when_none():
    assert compose_sms("验证码123456。", signature="【XX银行】", opt_out=None) == (
        "【XX银行】验证码123456。")


def test_compose_sms_raises_when_body_empty():
    with pytest.raises(ValueError, match="empty"):
        compose_sms(" \n ", signature="【XX银行】", opt_out=None)


def test_compose_sms_accepts_exactly_max_chars():
    text = compose_sms("存" * (MAX_SMS_CHARS - 6), signature="【XX银行】", opt_out=None)
    assert len(text) == MAX_SMS_CHARS


def test_compose_sms_raises_naming_length_when_too_long():
    with pytest.raises(ValueError, match="501"):
        compose_sms("存" * (MAX_SMS_CHARS - 5), signature="【XX银行】", opt_out=None)


def _reference_length(text: str) -> tuple[int, str, int]:
    """The per-character definition the fast measure_sms must agree with (GSM 03.38, UTF-16)."""
    from campaign_engine.rendering.sms import _GSM7_BASIC, _GSM7_EXTENSION

    if all(c in _GSM7_BASIC or c in _GSM7_EXTENSION for c in text):
        chars, encoding, single, part = sum(2 if c in _GSM7_EXTENSION else 1 for c in text), "GSM-7", 160, 153
    else:
        chars, encoding, single, part = sum(2 if ord(c) > 0xFFFF else 1 for c in text), "UCS-2", 70, 67
    segments = 0 if chars == 0 else 1 if chars <= single else -(-chars // part)
    return chars, encoding, segments


def test_measure_sms_agrees_with_the_per_character_definition_on_random_texts():
    import random

    from campaign_engine.rendering.sms import measure_sms

    rng = random.Random(20261202)
    gsm = "abcXYZ019 .,!?@£$¥èé\n\r_ΔΦ" "|^€{}[]~\\\f"
    alphabets = (gsm, gsm + "【】尊敬的客户您好，。！" "😀🎉𠀀" "\u00a0`ç", gsm + "ç")  # ç: not GSM-7 (Ç is)
    encodings = set()
    for _ in range(6000):
        alphabet = rng.choice(alphabets)
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 400)))
        got = measure_sms(text)
        assert (got.chars, got.encoding, got.segments) == _reference_length(text), repr(text)
        encodings.add(got.encoding)
    assert encodings == {"GSM-7", "UCS-2"}
