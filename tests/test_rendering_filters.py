from datetime import date, datetime
from decimal import Decimal

import pytest

from campaign_engine.rendering.filters import (
    FILTERS,
    cn_date,
    tier_name,
    mask_account,
    mask_mobile,
    money,
    percent,
    salutation,
)


@pytest.mark.parametrize(("value", "expected"), [
    (1234.56, "¥1,234.56"),
    (0, "¥0.00"),
    (1234567, "¥1,234,567.00"),
    (Decimal("0.5"), "¥0.50"),
    (" 88.8 ", "¥88.80"),
])
def test_money_formats_with_symbol_and_thousands(value, expected):
    assert money(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (2.675, "¥2.68"),  # binary float is 2.67499..., a person expects half up
    (Decimal("0.005"), "¥0.01"),
    ("1.004", "¥1.00"),
    (Decimal("-2.345"), "-¥2.35"),
])
def test_money_rounds_half_up(value, expected):
    assert money(value) == expected


def test_money_puts_sign_before_symbol_when_negative():
    assert money(-1234.56) == "-¥1,234.56"


def test_money_shows_no_sign_when_negative_rounds_to_zero():
    assert money(-0.001) == "¥0.00"


def test_money_uses_given_symbol():
    assert money(5, "$") == "$5.00"


@pytest.mark.parametrize("value", [None, "abc", "", "NaN", "Infinity", True, [1]])
def test_money_raises_on_non_number(value):
    with pytest.raises(ValueError, match="money"):
        money(value)


@pytest.mark.parametrize(("value", "expected"), [
    (date(2026, 3, 5), "2026年3月5日"),
    (datetime(2026, 12, 15, 23, 59), "2026年12月15日"),
    ("2026-03-15", "2026年3月15日"),
])
def test_cn_date_formats_without_zero_padding(value, expected):
    assert cn_date(value) == expected


@pytest.mark.parametrize("value", [None, "15/03/2026", "2026-02-30", 20260315])
def test_cn_date_raises_on_non_date(value):
    with pytest.raises(ValueError, match="cn_date"):
        cn_date(value)


@pytest.mark.parametrize(("value", "expected"), [
    ("6222021234567890", "尾号7890"),
    ("6222 0212 3456 7890 ", "尾号7890"),
    ("123", "尾号123"),
])
def test_mask_account_keeps_last_four(value, expected):
    assert mask_account(value) == expected


@pytest.mark.parametrize("value", [None, "", "   "])
def test_mask_account_raises_when_empty(value):
    with pytest.raises(ValueError, match="mask_account"):
        mask_account(value)


@pytest.mark.parametrize(("value", "expected"), [
    ("13812345678", "138****5678"),
    ("+8613812345678", "138****5678"),
    ("8613812345678", "138****5678"),
    ("+86 138 1234 5678", "138****5678"),
    ("0755-87654321", "075*****4321"),
    ("1234567", "*****67"),
])
def test_mask_mobile_masks_middle(value, expected):
    assert mask_mobile(value) == expected


def test_mask_mobile_raises_when_empty():
    with pytest.raises(ValueError, match="mask_mobile"):
        mask_mobile(None)


@pytest.mark.parametrize(("name", "gender", "expected"), [
    ("张伟", "M", "张先生"),
    ("李娜", "F", "李女士"),
    ("李娜", "f", "李女士"),
    ("欧阳修", "M", "欧阳先生"),
    ("司马相如", "M", "司马先生"),
    ("上官婉儿", "F", "上官女士"),
    ("诸葛亮", "M", "诸葛先生"),
])
def test_salutation_uses_surname_and_title(name, gender, expected):
    assert salutation(name, gender) == expected


@pytest.mark.parametrize("gender", [None, "", "X"])
def test_salutation_uses_full_name_when_gender_unknown(gender):
    assert salutation("张伟", gender) == "张伟"


@pytest.mark.parametrize("name", [None, "", "  "])
def test_salutation_uses_generic_greeting_when_name_empty(name):
    assert salutation(name, "M") == "尊敬的客户"


@pytest.mark.parametrize(("gender", "expected"), [
    ("M", "Mr. Smith"), ("F", "Ms. Smith"), (None, "John Smith"),
])
def test_salutation_uses_last_word_for_latin_names(gender, expected):
    assert salutation("John  Smith", gender) == expected


@pytest.mark.parametrize(("value", "digits", "expected"), [
    (3.25, 2, "3.25%"),
    (2.1, 2, "2.10%"),
    ("1.755", 2, "1.76%"),
    (Decimal("3.5"), 0, "4%"),
    (-0.125, 2, "-0.13%"),
])
def test_percent_formats_percent_numbers(value, digits, expected):
    assert percent(value, digits) == expected


def test_percent_raises_on_non_number():
    with pytest.raises(ValueError, match="percent"):
        percent(None)


def test_filters_registers_every_filter_by_name():
    assert FILTERS == {
        "money": money, "percent": percent, "cn_date": cn_date,
        "mask_account": mask_account, "mask_mobile": mask_mobile, "salutation": salutation,
        "tier_name": tier_name,
    }


def test_tier_name_says_the_tier_in_chinese():
    assert [tier_name(t) for t in ("diamond", "platinum", "gold", "regular", "restricted", "vip")] == [
        "钻石客户", "白金客户", "金客户", "普通客户", "限制客户", "vip"]
