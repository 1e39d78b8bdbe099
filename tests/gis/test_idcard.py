"""Resident ID numbers and phone numbers (pure functions, no database)."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from gis.errors import InvalidInput
from gis.ledger.idcard import (
    PROVINCE_CODES,
    birth_date_of,
    gender_of,
    id_check_char,
    make_id_number,
    mask_id_number,
    mask_phone,
    normalize_id_number,
    normalize_phone,
    validate_id_number,
    validate_phone,
)

KNOWN = "11010519491231002X"


def with_check(first17: str) -> str:
    return first17 + id_check_char(first17)


def test_known_number_is_valid() -> None:
    assert validate_id_number(KNOWN) == (KNOWN, None)
    assert birth_date_of(KNOWN) == date(1949, 12, 31)
    assert gender_of(KNOWN) == "女"


@pytest.mark.parametrize(
    "written",
    ["11010519491231002x", " 110105 19491231 002X ", "１１０１０５１９４９１２３１００２ｘ"],
)
def test_written_forms_normalize(written: str) -> None:
    assert normalize_id_number(written) == KNOWN
    assert validate_id_number(written) == (KNOWN, None)


def test_changing_any_digit_breaks_the_checksum() -> None:
    for i in range(17):
        for d in "0123456789":
            if d == KNOWN[i]:
                continue
            changed = KNOWN[:i] + d + KNOWN[i + 1 :]
            assert id_check_char(changed[:17]) != "X", changed
            assert validate_id_number(changed)[0] is None, changed


def _has_cjk(text: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" for ch in text)


def test_wrong_check_character_says_the_right_one() -> None:
    for c in "0123456789":
        number, reason = validate_id_number(KNOWN[:17] + c)
        assert number is None
        assert reason.code == "id_check_char"
        # each language alone: no English on the Chinese screen, no Chinese on the English
        assert reason.text("zh") == "身份证号校验位错误（应为 X）"
        assert reason.text("en") == "Wrong check character: it should be X"


def test_17_characters_refused_with_reason() -> None:
    number, reason = validate_id_number(KNOWN[:17])
    assert number is None and reason.code == "id_length"
    assert reason.text("zh") == "身份证号应为18位（现为 17 位）"
    assert reason.text("en") == "The ID number must have 18 characters (it has 17)"


@pytest.mark.parametrize(
    ("number", "code", "needle"),
    [
        ("", "id_empty", "empty"),
        ("1101051949123100A2", "id_characters", "17 digits followed by a digit or X"),
        ("110105194912310X2X", "id_characters", "17 digits followed by a digit or X"),
        (with_check("99010519491231002"), "id_region", "Region code 990105"),
        (with_check("00010519491231002"), "id_region", "Region code"),
        (with_check("11010519490230002"), "id_birth_invalid", "19490230 in the ID number is not"),
        (with_check("11010519491331002"), "id_birth_invalid", "not a real date"),
        (with_check("11010519000229002"), "id_birth_invalid", "not a real date"),  # no leap year
    ],
)
def test_invalid_numbers_have_reasons(number: str, code: str, needle: str) -> None:
    result, reason = validate_id_number(number)
    assert result is None
    assert reason is not None and reason.code == code and needle in reason.text("en")
    assert _has_cjk(reason.text("zh")) and not _has_cjk(reason.text("en"))


def test_leap_day_and_future_births() -> None:
    assert validate_id_number(with_check("11010520000229002"))[1] is None
    future = with_check("32010220300101001")
    result, reason = validate_id_number(future, today=date(2025, 1, 1))
    assert result is None and reason.code == "id_birth_future"
    assert reason.text("en") == "The birth date 2030-01-01 in the ID number is in the future"
    assert reason.text("zh") == "身份证号中的出生日期 2030-01-01 晚于今天"
    assert validate_id_number(future, today=date(2030, 1, 1))[0] == future


def test_province_codes() -> None:
    assert isinstance(PROVINCE_CODES, frozenset)
    assert len(PROVINCE_CODES) == 36
    assert {"11", "15", "37", "46", "54", "65", "71", "83", "91"} <= PROVINCE_CODES
    assert not {"10", "16", "20", "24", "38", "47", "55", "66", "72", "84", "90"} & PROVINCE_CODES


def test_derived_fields_need_a_valid_number() -> None:
    assert gender_of(with_check("32010219800101001")) == "男"
    with pytest.raises(InvalidInput, match="校验位"):
        birth_date_of(KNOWN[:17] + "1")
    with pytest.raises(InvalidInput, match="18"):
        gender_of("123")


def test_make_id_number_round_trip() -> None:
    rng = random.Random(7)
    regions = ["110105", "320102", "310107", "440305", "650102", "810000", "830000"]
    day = date(1900, 1, 1)
    while day < date(2024, 12, 31):
        seq = rng.randrange(1000)
        number = make_id_number(rng.choice(regions), day, seq)
        assert validate_id_number(number) == (number, None)
        assert birth_date_of(number) == day
        assert gender_of(number) == ("男" if seq % 2 else "女")
        assert number[14:17] == f"{seq:03d}"
        day += timedelta(days=rng.randrange(1, 60))
    assert make_id_number("110105", date(1949, 12, 31), 2) == KNOWN


@pytest.mark.parametrize(
    ("region", "seq"),
    [("11010", 1), ("990105", 1), ("11010a", 1), ("110105", -1), ("110105", 1000)],
)
def test_make_id_number_refuses_bad_input(region: str, seq: int) -> None:
    with pytest.raises(InvalidInput):
        make_id_number(region, date(1990, 1, 1), seq)


def test_id_check_char_needs_17_digits() -> None:
    assert id_check_char("11010519491231002") == "X"
    for bad in ("1101051949123100", "1101051949123100A", "١١٠١٠٥١٩٤٩١٢٣١٠٠٢"):
        with pytest.raises(InvalidInput):
            id_check_char(bad)


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("13812345678", "13812345678"),
        ("138 1234 5678", "13812345678"),
        ("138-1234-5678", "13812345678"),
        ("+86 138 1234 5678", "13812345678"),
        ("+8613812345678", "13812345678"),
        ("8613812345678", "13812345678"),
        ("0086-19912345678", "19912345678"),
        ("１３８１２３４５６７８", "13812345678"),
        ("025-84561234", "025-84561234"),
        ("02584561234", "025-84561234"),
        ("(025) 8456 1234", "025-84561234"),
        ("０２５－８４５６１２３４", "025-84561234"),
        ("010-62751234", "010-62751234"),
        ("0571-88881234", "0571-88881234"),
        ("05718888123", "0571-8888123"),
        ("0755 2345678", "0755-2345678"),
        ("+86 25 8456 1234", "025-84561234"),
    ],
)
def test_valid_phones(written: str, expected: str) -> None:
    assert normalize_phone(written) == expected
    assert validate_phone(written) == (expected, None)


@pytest.mark.parametrize(
    ("written", "code"),
    [
        ("", "phone_empty"),
        ("   ", "phone_empty"),
        ("1381234567", "phone_mobile"),
        ("138123456789", "phone_mobile"),
        ("12812345678", "phone_mobile"),
        ("025-1456123", "phone_landline"),
        ("025-845612", "phone_landline"),
        ("025-845612345", "phone_landline"),
        ("tel 13812345678", "phone_characters"),
        ("23456789", "phone_format"),
    ],
)
def test_invalid_phones(written: str, code: str) -> None:
    result, reason = validate_phone(written)
    assert result is None
    assert reason is not None and reason.code == code
    assert _has_cjk(reason.text("zh")) and not _has_cjk(reason.text("en"))


def test_masks() -> None:
    assert mask_id_number("320102198001011234") == "320***********1234"
    assert mask_id_number("11010519491231002x") == "110***********002X"
    assert mask_id_number("320102800101123") == "320********1123"
    assert mask_id_number("3201021980") == "**********"
    assert mask_id_number("") == ""
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("+86 138-1234-5678") == "138****5678"
    assert mask_phone("02584561234") == "025-******34"
    assert mask_phone("0571-8888123") == "0571-*****23"
    assert mask_phone("12345") == "*****"
    assert mask_phone("") == ""
