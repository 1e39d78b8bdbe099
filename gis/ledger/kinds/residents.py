"""The residents' ledger (居民台账) as a sheet: keyed by ID number, placed by building."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.address import parse_address, search_keys
from gis.audit import Who
from gis.ledger import batch, reasons
from gis.ledger.kinds.common import number_hash, residents_by_hash, split, taken_elsewhere
from gis.ledger.plan import Action, Plan
from gis.ledger.templates import get_template
from gis.security import Keys

FIELDS = ("name", "gender", "birth_date", "phone", "room", "relation", "status", "notes")
FOLLOW_THE_NUMBER = ("gender", "birth_date")  # never changed by an import: the number says
STATE = "name, gender, birth_date, phone_enc, building_id, room, relation, status, notes"
ELSEWHERE = reasons.reason("registered_elsewhere")


def building_resolver(conn: Connection) -> Callable[[str], tuple[int | None, str | None]]:
    """Building code (source id) or address text → building id, within the user's scope."""
    rows = conn.execute(
        sa.text(
            "SELECT b.id, b.source_id, b.address_keys FROM building b "
            "WHERE b.id IN (SELECT ga_people_buildings())"
        )
    ).all()
    by_code = {r.source_id: r.id for r in rows if r.source_id}
    by_key: dict[str, list[int]] = {}
    for r in rows:
        if r.address_keys:
            by_key.setdefault(r.address_keys[0], []).append(r.id)

    def resolve(text: str) -> tuple[int | None, str | None]:
        text = text.strip()
        if text in by_code:
            return by_code[text], None
        addr = parse_address(text)
        if addr.road:
            key = search_keys(addr)[0].rsplit("|", 1)[0] + "|"
            found = by_key.get(key, [])
            if len(found) == 1:
                return found[0], None
            if len(found) > 1:
                return None, reasons.reason("several_buildings", n=len(found))
        return None, reasons.reason("no_building")

    return resolve


class Residents:
    """Residents: added or updated by ID number; a number registered elsewhere is refused."""

    name = "residents"
    subject = compared = "resident"
    looks_up_numbers = True
    audits_touched = False

    def plan(
        self, conn: Connection, keys: Keys, rows: list[dict[str, Any]], plan: Plan,
        community_id: int | None,
    ) -> None:  # fmt: skip
        """Compare each row with the resident of its number: three queries in all."""
        heading = {c.key: c.heading for c in get_template(self.name).columns}
        resolve = building_resolver(conn)
        placed = [(row, *resolve(str(row["building"]))) for row in rows]
        hashes = {
            row["_row"]: number_hash(keys, row["id_number"])
            for row, bid, _reason in placed
            if bid is not None
        }
        found = residents_by_hash(conn, list(hashes.values()), STATE)
        elsewhere = taken_elsewhere(conn, [h for h in hashes.values() if h not in found])
        for row, bid, reason in placed:  # in row order, as the errors are listed
            n = row["_row"]
            if bid is None:
                plan.error(n, heading["building"], row["building"], reason)
                continue
            values = {k: row.get(k) for k in FIELDS} | {"building_id": bid}
            now = found.get(hashes[n])
            if now is None:
                if hashes[n] in elsewhere:
                    plan.registered_elsewhere += 1
                    plan.error(n, heading["id_number"], None, ELSEWHERE)
                    continue
                plan.actions.append(("add", None, {**values, "id_number": row["id_number"]}, n))
                continue
            plan.seen.add(now.id)
            plan.compare(now.id, values, _state(keys, now), n)

    def write(self, conn: Connection, keys: Keys, user: Who, actions: list[Action]) -> None:
        adds, updates = split(actions)
        if adds:
            batch.create_residents(conn, keys, user, adds)
        if updates:
            batch.update_residents(conn, keys, user, updates)

    def export(self, conn: Connection, keys: Keys) -> tuple[list[int], list[dict[str, Any]]]:
        ids, rows = [], []
        for r in conn.execute(
            sa.text(
                "SELECT r.*, b.source_id FROM resident r JOIN building b ON b.id = r.building_id "
                "ORDER BY r.building_id, r.room, r.id"
            )
        ):
            ids.append(r.id)
            rows.append({
                "name": r.name,
                "gender": r.gender,
                "birth_date": r.birth_date,
                "id_number": keys.open(r.id_number_enc, "resident.id_number"),
                "phone": keys.open(r.phone_enc, "resident.phone") if r.phone_enc else None,
                "building": r.source_id,
                "room": r.room,
                "relation": r.relation,
                "status": r.status,
                "notes": r.notes,
            })  # fmt: skip
        return ids, rows


def _state(keys: Keys, r: Any) -> dict[str, Any]:
    """A resident's values as a sheet row holds them (the phone decrypted); without the
    fields that follow the ID number."""
    now = {k: getattr(r, k) for k in STATE.split(", ") if k != "phone_enc"}
    now["phone"] = keys.open(r.phone_enc, "resident.phone") if r.phone_enc is not None else None
    for k in FOLLOW_THE_NUMBER:
        now.pop(k)
    return now
