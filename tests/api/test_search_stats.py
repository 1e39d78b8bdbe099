"""The search box (一口清) on real Nanjing addresses, and planners' suppressed counts."""

from __future__ import annotations


def test_search_address_variants(api):
    a, _info, _url = api
    plain = a.get("admin", "/api/search", params={"q": "中山路112号"}).json()
    hits = [h for h in plain["results"] if h["kind"] == "building"]
    assert len(hits) == 1 and hits[0]["match"] == "address"
    for variant in (
        "中山路１１２号",
        "南京市玄武区中山路 112 号",
        "中山路一百一十二号",
        "中山路112",
    ):
        r = a.get("admin", "/api/search", params={"q": variant}).json()
        got = [h["id"] for h in r["results"] if h["kind"] == "building" and h["match"] == "address"]
        assert got == [hits[0]["id"]], (variant, r)
    three = a.get("admin", "/api/search", params={"q": "中山东路300号"}).json()
    assert sum(h["match"] == "address" for h in three["results"]) == 3
    # a number nobody has: the road, said to be less specific
    r = a.get("admin", "/api/search", params={"q": "中山东路9999号"}).json()
    assert r["fallback"] and r["results"]
    assert all(
        h["match"] == "address (less specific)" for h in r["results"] if h["kind"] == "building"
    )


def test_search_is_scoped_and_people_audited(api):
    a, info, _url = api
    r = a.get("worker_a1", "/api/search", params={"q": "中山路112号"}).json()
    b = a.get("admin", "/api/search", params={"q": "中山路112号"}).json()["results"][0]["id"]
    in_scope = b in info.buildings["a1"]
    assert any(h["id"] == b for h in r["results"]) == in_scope
    name = a.get("worker_a1", f"/api/residents/{info.residents['a1'][0]}").json()["name"]
    found = a.get("worker_a1", "/api/search", params={"q": name}).json()["results"]
    assert any(h["kind"] == "resident" and h["id"] == info.residents["a1"][0] for h in found)
    # the same name typed by a user of another community finds nobody from A1
    other = a.get("staff_b", "/api/search", params={"q": name}).json()["results"]
    assert not any(h["kind"] == "resident" and h["id"] in info.residents["a1"] for h in other)
    assert not any(
        h["kind"] == "resident"
        for h in a.get("planner_a", "/api/search", params={"q": name}).json()["results"]
    )


def test_stats_suppress_small_counts(api):
    a, info, _url = api
    r = a.get("planner_a", f"/api/stats/grids?community_id={info.community_a}")
    assert r.status_code == 200
    by_id = {x["id"]: x for x in r.json()["areas"]}
    assert by_id[info.grid_a1]["counts"]["residents"] == len(info.residents["a1"])
    for area in by_id.values():
        for value in area["counts"].values():
            assert value == "<5" or value >= 5
    # the planner's scope is community A only
    r = a.get("planner_a", f"/api/stats/grids?community_id={info.community_b}").json()
    assert r["areas"] == []
