"""Synthetic residents for the demo and the benchmarks, consistent with household counts.

Every dwelling of every residential building (registered or estimated, ``dwelling_all``)
gets one household of 1–5 people: a head, maybe a spouse, children, a parent. Names are
drawn from common surnames and given-name characters, ID numbers are valid GB 11643
numbers (region 320102, birth dates from the household's ages), phones are 11-digit
mobiles in a test range. Every row is marked ``is_synthetic``; none is a real person.
Special groups (elderly living alone, disabled, low income), key persons and backbone
people are drawn at rates of the order the seed documents give.
"""

from __future__ import annotations

import datetime as dt
import io
import random
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.ledger import idcard
from gis.security import Keys

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"  # noqa: E501
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鹏辉建国文斌宇浩凯健俊帆欣怡晨晓雪梅琳婷瑶嘉睿子涵梓轩一诺雨桐思远志宏海波春兰德福永庆"  # noqa: E501
REGION = "320102"
SIZES = (1, 2, 3, 4, 5)
SIZE_WEIGHTS = (0.18, 0.32, 0.27, 0.15, 0.08)  # mean about 2.6 people per household


def _name(rng: random.Random, surname: str | None = None) -> str:
    given = "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))
    return (surname or rng.choice(SURNAMES)) + given


def _birth(rng: random.Random, age: int, today: dt.date) -> dt.date:
    return today - dt.timedelta(days=int(age * 365.25) + rng.randrange(365))


def _household(rng: random.Random, today: dt.date) -> list[dict]:
    size = rng.choices(SIZES, SIZE_WEIGHTS)[0]
    head_age = rng.randint(24, 88) if size > 1 else rng.randint(22, 92)
    surname = rng.choice(SURNAMES)
    people = [{"relation": "head", "age": head_age, "surname": surname}]
    if size >= 2 and head_age < 90:
        people.append({"relation": "spouse", "age": max(20, head_age + rng.randint(-5, 5))})
    while len(people) < size:
        if head_age > 45 and rng.random() < 0.25:
            people.append({"relation": "parent", "age": min(100, head_age + rng.randint(22, 32))})
        else:
            age = max(0, head_age - rng.randint(22, 36))
            people.append({"relation": "child", "age": age, "surname": surname})
    return people


def generate(
    conn: Connection,
    keys: Keys,
    *,
    seed: int = 1,
    limit: int | None = None,
    building_ids: list[int] | None = None,
    on_step: Callable[[str, float], None] | None = None,
) -> dict[str, int]:
    """Fill the ledgers with synthetic people for every dwelling (owner connection).

    Residents already present are left alone; nothing is generated twice (a building that
    has residents is skipped). ``limit`` stops after that many residents; ``building_ids``
    restricts it to those buildings.
    """
    step = on_step or (lambda _n, _f: None)
    rng = random.Random(seed)
    today = dt.date(2026, 1, 1)  # fixed: the same seed gives the same people every year
    dwellings = conn.execute(
        sa.text(
            "SELECT d.building_id, d.room FROM dwelling_all d "
            "WHERE NOT EXISTS (SELECT 1 FROM resident r WHERE r.building_id = d.building_id) "
            "AND (CAST(:b AS bigint[]) IS NULL OR d.building_id = ANY(CAST(:b AS bigint[]))) "
            "ORDER BY d.building_id, d.floor, d.room"
        ),
        {"b": building_ids},
    ).all()
    step("people for each dwelling", 0.1)
    seq: dict[dt.date, int] = {}
    buf = io.StringIO()
    meta: list[tuple[int, int]] = []  # (age, household size) per resident, in order
    count = 0
    taken = {bytes(h) for (h,) in conn.execute(sa.text("SELECT id_number_hmac FROM resident"))}
    for building_id, room in dwellings:
        household = _household(rng, today)
        for p in household:
            born = _birth(rng, p["age"], today)
            n = seq.get(born, rng.randrange(0, 300))
            while True:
                n = (n + 1) % 1000
                number = idcard.make_id_number(REGION, born, n)
                h = keys.search_hash(number, "id_number")
                if h not in taken:
                    break
            seq[born] = n
            taken.add(h)
            name = _name(rng, p.get("surname"))
            phone = f"1{rng.choice('3578')}{rng.randrange(10**9):09d}" if p["age"] >= 16 else None
            cols = [
                name,
                idcard.gender_of(number),
                born.isoformat(),
                "\\\\x" + keys.seal(number, "resident.id_number").hex(),
                "\\\\x" + h.hex(),
                idcard.mask_id_number(number),
                "\\\\x" + keys.seal(phone, "resident.phone").hex() if phone else "\\N",
                "\\\\x" + keys.search_hash(phone, "phone").hex() if phone else "\\N",
                idcard.mask_phone(phone) if phone else "\\N",
                str(building_id),
                room,
                p["relation"],
                rng.choices(("both", "registered", "living_here", "migrant"), (70, 8, 12, 10))[0],
                "t",
            ]
            buf.write("\t".join(cols) + "\n")
            meta.append((p["age"], len(household)))
            count += 1
        if limit is not None and count >= limit:
            break
    step("writing residents", 0.5)
    raw = conn.connection.driver_connection
    with (
        raw.cursor() as cur,
        cur.copy(
            "COPY resident (name, gender, birth_date, id_number_enc, id_number_hmac, "
            "id_number_masked, phone_enc, phone_hmac, phone_masked, building_id, room, "
            "relation, status, is_synthetic) FROM STDIN"
        ) as copy,
    ):
        copy.write(buf.getvalue())
    ids = [
        r[0]
        for r in conn.execute(
            sa.text("SELECT id FROM resident WHERE is_synthetic ORDER BY id DESC LIMIT :n"),
            {"n": count},
        )
    ][::-1]
    step("special groups, key persons, backbone", 0.8)
    special, key, backbone = [], [], []
    for rid, (age, size) in zip(ids, meta, strict=True):
        if age >= 70 and size == 1:
            special.append((rid, "elderly_alone"))
        if rng.random() < 0.015:
            special.append((rid, "disabled"))
        if rng.random() < 0.01:
            special.append((rid, "low_income"))
        if age >= 18 and rng.random() < 0.002:
            key.append((rid, rng.choice(("community_correction", "released", "mental_disorder"))))
        if age >= 18 and rng.random() < 0.06:
            backbone.append((rid, "party_member"))
        if age >= 16 and rng.random() < 0.03:
            backbone.append((rid, "volunteer"))
    for table, column, rows in (
        ("special_group", "category", special),
        ("key_person", "category", key),
        ("backbone", "role", backbone),
    ):
        if rows:
            conn.execute(
                sa.text(
                    f"INSERT INTO {table} (resident_id, {column}) "
                    "SELECT * FROM unnest(CAST(:r AS bigint[]), CAST(:c AS text[])) "
                    "ON CONFLICT DO NOTHING"
                ),
                {"r": [r for r, _ in rows], "c": [c for _, c in rows]},
            )
    step("done", 1.0)
    return {
        "residents": count,
        "special_groups": len(special),
        "key_persons": len(key),
        "backbone": len(backbone),
    }
