"""One valid ID number for each check character 0–9 and X, from a table made outside the code.

The check character of GB 11643-1999 is ISO 7064 MOD 11-2. The code under test
(gis/ledger/idcard.py) uses the standard's table of weights; the table here was worked out
with the ISO 7064 recursion (weight of position i = 2^(17-i) mod 11, check = (12 - sum mod 11)
mod 11, 10 written X), and is checked again below with that recursion, not with the code.
"""

from __future__ import annotations

import pytest

from gis.ledger.idcard import id_check_char, make_id_number, validate_id_number

# The two examples printed in GB 11643-1999 itself.
PUBLISHED = {"11010519491231002X": "X", "440524188001010014": "4"}
# Nanjing (Xuanwu) residents born in 1985, one for each check character.
BY_CHECK_CHAR = {
    "0": "320102198507050250",
    "1": "320102198503010251",
    "2": "320102198504030182",
    "3": "320102198503030113",
    "4": "320102198505010394",
    "5": "320102198504010325",
    "6": "320102198509020186",
    "7": "320102198508020117",
    "8": "320102198502010188",
    "9": "320102198501010119",
    "X": "32010219850603032X",
}
ALL = {**{n: c for c, n in BY_CHECK_CHAR.items()}, **PUBLISHED}


def iso7064_mod_11_2(first17: str) -> str:
    """The check character by the ISO 7064 recursion (independent of the code's table)."""
    total = sum(int(d) * pow(2, 17 - i, 11) for i, d in enumerate(first17)) % 11
    check = (12 - total) % 11
    return "X" if check == 10 else str(check)


def test_the_table_holds_every_check_character_once() -> None:
    assert sorted(BY_CHECK_CHAR) == sorted("0123456789X")
    for number, check in ALL.items():
        assert len(number) == 18 and number[17] == check
        assert iso7064_mod_11_2(number[:17]) == check, number


@pytest.mark.parametrize(("number", "check"), sorted(ALL.items()))
def test_valid_number_for_each_check_character(number: str, check: str) -> None:
    assert id_check_char(number[:17]) == check
    assert validate_id_number(number) == (number, None)
    assert validate_id_number(number.lower()) == (number, None)  # a written x
    for wrong in "0123456789X":
        if wrong != check:
            result, reason = validate_id_number(number[:17] + wrong)
            assert result is None and reason.code == "id_check_char", wrong
            assert reason.params == {"expected": check}, wrong
            assert reason.text("zh") == f"身份证号校验位错误（应为 {check}）", wrong


@pytest.mark.parametrize("number", sorted(BY_CHECK_CHAR.values()))
def test_make_id_number_gives_the_same_check_character(number: str) -> None:
    from datetime import date

    born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    assert make_id_number(number[:6], born, int(number[14:17])) == number
