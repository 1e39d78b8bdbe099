"""Text fields as stored, and the names a person reads for them in a refusal.

Used by every form that stores free text: the ledgers, patrol problems and visits, the
residents' voice. A value is stripped, has no control characters and keeps within its
limit, checked before anything else is asked of the database.
"""

from __future__ import annotations

from typing import Any

from gis.errors import InvalidInput

_CONTROL = {chr(c) for c in range(32)} - {"\t", "\n", "\r"} | {"\x7f"}


# what a person reads for a field's name in a refusal (gis/messages/errors.toml, ledgers)
FIELD_LABELS = {
    "name": "ledgers.col_name",
    "room": "ledgers.col_room",
    "notes": "ledgers.col_notes",
    "handling": "ledgers.col_handling",
    "contact_name": "ledgers.col_contact_name",
    "address": "ledgers.col_address",
    "description": "form.field.description",
    "note": "form.field.note",
    "label": "form.field.label",
    "id_number": "ledgers.col_id_number",
    "phone": "ledgers.col_phone",
    "relation": "ledgers.col_relation",
    "status": "ledgers.col_status",
    "building_id": "ledgers.building",
}


def field_label(field: str) -> str:
    """The catalogue parameter naming ``field`` ("@key": translated when shown)."""
    return "@" + FIELD_LABELS.get(field, "form.field.value")


def clean_text(field: str, value: Any, max_len: int, *, required: bool = False) -> str | None:
    """A text field as stored: stripped, without control characters, within ``max_len``.

    Every field is checked here, before any lookup: a value that the database would refuse
    (a NUL character, too long) must fail before a question such as "is this ID number
    registered?" is asked, or the refusal itself would answer it.
    """
    if value is None or (isinstance(value, str) and not value.strip() and not required):
        return None
    label = field_label(field)
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text", key="form.not_text", field=label)
    text = value.strip()
    if required and not text:
        raise InvalidInput(f"{field} must not be empty", key="form.required", field=label)
    if any(c in _CONTROL for c in text):
        raise InvalidInput(f"{field} contains control characters; remove them",
                           key="form.control_chars", field=label)  # fmt: skip
    if len(text) > max_len:
        raise InvalidInput(f"{field} may have at most {max_len} characters",
                           key="form.too_long", field=label, max=max_len)  # fmt: skip
    return text
