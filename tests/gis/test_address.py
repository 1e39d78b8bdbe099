"""Chinese address parsing, normalization and match keys (pure functions, no database)."""

from __future__ import annotations

import random

import pytest

from gis.address import Address, normalize_text, parse_address, search_keys

A = Address

CASES = [
    # Shanghai lanes
    ("长寿路123弄5号301室", A(road="长寿路", lane="123", number="5", room="301")),
    ("上海市普陀区长寿路123弄5号301室",
     A(city="上海市", district="普陀区", road="长寿路", lane="123", number="5", room="301")),
    ("长寿路一百二十三弄五号三〇一室", A(road="长寿路", lane="123", number="5", room="301")),
    ("长寿路123衖5號301室", A(road="长寿路", lane="123", number="5", room="301")),
    ("长寿路123弄5-301", A(road="长寿路", lane="123", number="5", room="301")),
    ("长寿路123弄5", A(road="长寿路", lane="123", number="5")),
    ("长寿路123弄", A(road="长寿路", lane="123")),
    ("长寿路十二弄", A(road="长寿路", lane="12")),
    ("上海市浦东新区世纪大道100号", A(city="上海市", district="浦东新区", road="世纪大道",
                                       number="100")),
    ("曹杨新村街道兰溪路138弄12号402室", A(road="兰溪路", lane="138", number="12", room="402")),
    ("步高里5号", A(road="步高里", number="5")),
    # Nanjing and elsewhere: buildings, units, rooms
    ("南京市鼓楼区中山路 ８８号 ２幢 ３０１",
     A(city="南京市", district="鼓楼区", road="中山路", number="88", building="2", room="301")),
    ("江苏省南京市玄武区新街口大街5号", A(city="南京市", district="玄武区", road="新街口大街",
                                           number="5")),
    ("中山北路88号3栋2单元502", A(road="中山北路", number="88", building="3", unit="2",
                                   room="502")),
    ("中山北路88号3座2单元502室", A(road="中山北路", number="88", building="3", unit="2",
                                     room="502")),
    ("中山北路88號3號樓二單元502房", A(road="中山北路", number="88", building="3", unit="2",
                                        room="502")),
    ("中山路88号5-301", A(road="中山路", number="88", building="5", room="301")),
    ("中山路88号3-2-502", A(road="中山路", number="88", building="3", unit="2", room="502")),
    ("中山路88号3—2—502室", A(road="中山路", number="88", building="3", unit="2", room="502")),
    ("中山路88号 5 301", A(road="中山路", number="88", building="5", room="301")),
    ("中山路88号5#301", A(road="中山路", number="88", building="5", room="301")),
    ("中山路88号A座1201", A(road="中山路", number="88", building="A", room="1201")),
    ("中山路88号ｂ座1201室", A(road="中山路", number="88", building="B", room="1201")),
    ("中山路88号第三幢第二单元201", A(road="中山路", number="88", building="3", unit="2",
                                      room="201")),
    ("中山路88号3楼301", A(road="中山路", number="88", room="301")),
    ("中山路88-1号", A(road="中山路", number="88-1")),
    ("中山路88", A(road="中山路", number="88")),
    ("中山路88号301", A(road="中山路", number="88", room="301")),
    ("中山路12巷3号", A(road="中山路", lane="12", number="3")),
    ("南锣鼓巷8号", A(road="南锣鼓巷", number="8")),
    ("北京市东城区帽儿胡同5号院2号楼3单元401", A(city="北京市", district="东城区",
                                                   road="帽儿胡同", number="5", building="2",
                                                   unit="3", room="401")),
    ("东四十条1号", A(road="东四十条", number="1")),
    ("阳光小区5幢301", A(road="阳光小区", building="5", room="301")),
    ("翠苑小区5栋2单元1201房间", A(road="翠苑小区", building="5", unit="2", room="1201")),
    ("曹杨新村6号", A(road="曹杨新村", number="6")),
    ("阳光花园3幢2单元101", A(road="阳光花园", building="3", unit="2", room="101")),
    ("金鹰家园7幢", A(road="金鹰家园", building="7")),
    ("江宁区秣陵街道胜太路58号", A(district="江宁区", road="胜太路", number="58")),
    ("广西壮族自治区南宁市青秀区民族大道100号", A(city="南宁市", district="青秀区",
                                                    road="民族大道", number="100")),
    ("浙江省杭州市西湖区文三路90号", A(city="杭州市", district="西湖区", road="文三路",
                                       number="90")),
    # roads with numbers or administrative words in their names
    ("经五路五号", A(road="经五路", number="5")),
    ("纬7路5号", A(road="纬7路", number="5")),
    ("县前街12号", A(road="县前街", number="12")),
    ("新市路12号", A(road="新市路", number="12")),
    ("镇江路3号", A(road="镇江路", number="3")),
    # missing parts and garbage
    ("长寿路", A(road="长寿路")),
    ("上海市普陀区", A(city="上海市", district="普陀区")),
    ("123弄5号301室", A(lane="123", number="5", room="301")),
    ("", A()),
    ("   ", A()),
    ("???!!", A()),
    ("hello world", A()),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] or "empty" for c in CASES])
def test_parse_address(text: str, expected: Address) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] or "empty" for c in CASES])
def test_label_parses_back_to_the_same_address(text: str, expected: Address) -> None:
    assert parse_address(parse_address(text).label()) == expected


def test_key_and_label() -> None:
    address = parse_address("上海市普陀区长寿路 一百二十三弄 5號 301")
    assert address.key() == "长寿路|123|5|||301"
    assert address.label() == "上海市普陀区长寿路123弄5号301室"
    assert parse_address("中山北路88号3栋2单元502").label() == "中山北路88号3幢2单元502室"
    assert Address().key() == "|||||"
    assert Address().label() == ""


def test_same_place_written_differently_has_one_key() -> None:
    forms = [
        "长寿路123弄5号301室",
        "上海市普陀区长寿路123弄5号301室",
        "长寿路 123 弄 5 号 301 室",
        "长寿路１２３弄５号３０１",
        "长寿路一百二十三弄五号三〇一室",
        "长寿路123衖5號301房",
        "长寿路123弄5-301",
    ]
    assert {parse_address(f).key() for f in forms} == {"长寿路|123|5|||301"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("中山路　８８号", "中山路88号"),
        ("长寿路一百二十三弄", "长寿路123弄"),
        ("十二号", "12号"),
        ("一百零五号", "105号"),
        ("两百号", "200号"),
        ("三单元", "3单元"),
        ("三〇一室", "301室"),
        ("二零一室", "201室"),
        ("经五路", "经五路"),
        ("东四十条", "东四十条"),
        ("5號3號樓", "5号3幢"),
        ("3栋2单元", "3幢2单元"),
        ("a座1201房间", "A幢1201室"),
        ("5#楼", "5幢"),
        ("5 301", "5-301"),
        ("5－301", "5-301"),
        ("第三幢", "3幢"),
        ("二三十号", "二三十号"),  # not a numeral: left as written
    ],
)
def test_normalize_text(text: str, expected: str) -> None:
    assert normalize_text(text) == expected


def test_search_keys_most_to_least_specific() -> None:
    assert search_keys("长寿路123弄5号") == ["长寿路|123|5|||", "长寿路|123||||", "长寿路|||||"]
    assert search_keys("中山北路88号3栋2单元502") == [
        "中山北路||88|3|2|502",
        "中山北路||88|3|2|",
        "中山北路||88|3||",
        "中山北路||88|||",
        "中山北路|||||",
    ]
    assert search_keys("长寿路") == ["长寿路|||||"]
    assert search_keys(parse_address("长寿路5号")) == ["长寿路||5|||", "长寿路|||||"]
    assert search_keys("123弄5号") == []
    assert search_keys("") == []


def test_search_keys_match_incomplete_queries() -> None:
    records = {
        "r1": "上海市普陀区长寿路123弄5号301室",
        "r2": "长寿路123弄5号302室",
        "r3": "长寿路123弄6号101室",
        "r4": "长寿路8号",
    }
    index: dict[str, set[str]] = {}
    for rid, text in records.items():
        for key in search_keys(text):
            index.setdefault(key, set()).add(rid)

    def lookup(query: str) -> set[str]:
        return next((index[k] for k in search_keys(query) if k in index), set())

    assert lookup("长寿路123弄5号三〇一室") == {"r1"}
    assert lookup("长寿路123弄5号") == {"r1", "r2"}
    assert lookup("长寿路123弄5号999室") == {"r1", "r2"}
    assert lookup("长寿路123弄") == {"r1", "r2", "r3"}
    assert lookup("长寿路8号") == {"r4"}
    assert lookup("长寿路9号") == {"r1", "r2", "r3", "r4"}
    assert lookup("中山路1号") == set()


def test_parse_never_raises() -> None:
    rng = random.Random(11)
    alphabet = list("长寿路中山区市省县街道镇弄巷胡同号幢栋座楼单元室房第一二十百千零〇两")
    alphabet += list("0123456789０１２-－— #xX?,.()　 ") + ["小区", "号楼", "自治区"]
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 25)))
        address = parse_address(text)
        assert isinstance(address, Address)
        search_keys(address)
        address.label()
    assert parse_address(None) == Address()  # type: ignore[arg-type]
    assert parse_address(123) == Address()  # type: ignore[arg-type]
