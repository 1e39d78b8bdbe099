"""Chinese resident ID numbers (GB 11643-1999) and mainland phone numbers.

An ID number has 18 characters: a 6-digit region code, the birth date as YYYYMMDD, a 3-digit
sequence (odd for men, even for women) and an ISO 7064 MOD 11-2 check character (0-9 or X).
Validation returns ``(value, None)`` or ``(None, reason)``; the reason
(gis/ledger/reasons.py) has a stable code and one short line a data-entry clerk can act
on, in Chinese and in English.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from gis.errors import InvalidInput
from gis.ledger.reasons import REASON, Reason, reason

PROVINCE_CODES = frozenset(
    {"11", "12", "13", "14", "15", "21", "22", "23"}
    | {f"{n}" for n in range(31, 38)}
    | {f"{n}" for n in range(41, 47)}
    | {f"{n}" for n in range(50, 55)}
    | {f"{n}" for n in range(61, 66)}
    | {"71", "81", "82", "83", "91"}
)
"""First two digits of a region code: provinces, Taiwan, Hong Kong, Macao, residence permits."""

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"
_ID_SHAPE = re.compile(r"[0-9]{17}[0-9X]")

_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_LANDLINE = re.compile(r"(0[0-9]{2,3})-([2-9][0-9]{6,7})")
_PHONE_SEPARATORS = re.compile(r"[\s\-()—–‐.]+")


def normalize_id_number(s: str) -> str:
    """Remove all whitespace, turn full-width characters half-width and ``x`` into ``X``."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", s)).upper()


def id_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the first 17 digits of an ID number."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise InvalidInput("the check character needs exactly 17 digits")
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def _birth_date(number: str) -> date | None:
    digits = number[6:14]
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None


def validate_id_number(
    s: str, *, today: date | None = None
) -> tuple[str, None] | tuple[None, Reason]:
    """Return ``(normalized, None)`` for a valid 18-character ID number, else ``(None, reason)``.

    Checked in order: length, characters, province code, birth date (a real date, not after
    ``today``), check character.
    """
    number = normalize_id_number(s)
    if not number:
        return None, reason("id_empty")
    if len(number) != 18:
        return None, reason("id_length", n=len(number))
    if not _ID_SHAPE.fullmatch(number):
        return None, reason("id_characters")
    if number[:2] not in PROVINCE_CODES:
        return None, reason("id_region", region=number[:6])
    born = _birth_date(number)
    if born is None:
        return None, reason("id_birth_invalid", digits=number[6:14])
    if born > (today or date.today()):
        return None, reason("id_birth_future", date=born.isoformat())
    expected = id_check_char(number[:17])
    if number[17] != expected:
        return None, reason("id_check_char", expected=expected)
    return number, None


def _valid_or_raise(id_number: str) -> str:
    number, why = validate_id_number(id_number)
    if number is None:
        raise InvalidInput(why, key=REASON + why.code, **why.params)
    return number


def birth_date_of(id_number: str) -> date:
    """The birth date of a valid ID number; ``InvalidInput`` if the number is not valid."""
    born = _birth_date(_valid_or_raise(id_number))
    assert born is not None  # validated above
    return born


def gender_of(id_number: str) -> str:
    """'男' if the 17th digit is odd, '女' if even; ``InvalidInput`` if the number is not valid."""
    return "男" if int(_valid_or_raise(id_number)[16]) % 2 else "女"


def make_id_number(region: str, birth: date, seq: int) -> str:
    """Build a valid ID number from a 6-digit region code, a birth date and a sequence 0..999.

    An odd ``seq`` gives a man, an even one a woman. Meant for synthetic residents.
    """
    if not re.fullmatch(r"[0-9]{6}", region) or region[:2] not in PROVINCE_CODES:
        raise InvalidInput(f"region must be 6 digits starting with a province code, got {region!r}")
    if not 0 <= seq <= 999:
        raise InvalidInput(f"sequence must be 0..999, got {seq}")
    first17 = f"{region}{birth.year:04d}{birth.month:02d}{birth.day:02d}{seq:03d}"
    return first17 + id_check_char(first17)


def normalize_phone(s: str) -> str:
    """Canonical form of a phone number: ``13812345678`` or ``025-84561234``.

    Full-width digits are allowed; spaces, dashes, dots and brackets are removed, and a
    ``+86`` / ``0086`` (or, before a mobile, ``86``) country prefix is dropped; a landline
    written internationally (``+86 25 8456 1234``) gets its leading 0 back. The area code is
    3 characters for 010 and 02X and 4 otherwise. Input that fits neither a mobile nor a
    landline comes back cleaned but otherwise unchanged; use :func:`validate_phone` to check.
    """
    t = _PHONE_SEPARATORS.sub("", unicodedata.normalize("NFKC", s))
    international = t.startswith(("+86", "0086"))
    if international:
        t = t.removeprefix("+86").removeprefix("0086")
    elif t.startswith("86") and _MOBILE.fullmatch(t[2:]):
        t = t[2:]
    if _MOBILE.fullmatch(t):
        return t
    if international and t[:1] in set("23456789"):
        t = "0" + t
    if re.fullmatch(r"0[0-9]{9,11}", t):
        split = 3 if t[1] in "12" else 4
        return f"{t[:split]}-{t[split:]}"
    return t


def validate_phone(s: str) -> tuple[str, None] | tuple[None, Reason]:
    """Return ``(normalized, None)`` for a mainland mobile or landline, else ``(None, reason)``."""
    phone = normalize_phone(s)
    if not phone:
        return None, reason("phone_empty")
    if _MOBILE.fullmatch(phone) or _LANDLINE.fullmatch(phone):
        return phone, None
    if not re.fullmatch(r"\+?[0-9\-]+", phone):
        return None, reason("phone_characters")
    if phone.startswith("1"):
        return None, reason("phone_mobile")
    if phone.startswith("0"):
        return None, reason("phone_landline")
    return None, reason("phone_format")


def mask_id_number(s: str) -> str:
    """First 3 and last 4 characters kept, the rest as ``*``: ``320***********1234``.

    Not the common 6 + 4: the birth date in between is also shown on the record (as a year
    to roles that may not see ID numbers), and region + full birth date + last 4 would give
    the whole number back. Anything but an 18- (or old 15-) character number is masked
    entirely.
    """
    number = normalize_id_number(s)
    if len(number) in (15, 18):
        return number[:3] + "*" * (len(number) - 7) + number[-4:]
    return "*" * len(number)


def mask_phone(s: str) -> str:
    """Mobiles as ``138****5678``, landlines as ``025-******34``; anything else fully masked."""
    phone, _ = validate_phone(s)
    if phone is None:
        return "*" * len(normalize_phone(s))
    if "-" in phone:
        area, local = phone.split("-")
        return f"{area}-{'*' * (len(local) - 2)}{local[-2:]}"
    return f"{phone[:3]}****{phone[-4:]}"
