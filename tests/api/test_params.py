"""Unknown query parameters are refused with a 422 that names them."""

from __future__ import annotations


def test_an_unknown_filter_is_refused_not_ignored(api):
    a, info, _url = api
    r = a.get("staff_a", f"/api/residents?building_id={info.buildings['a1'][0]}")
    assert r.status_code == 422
    assert "building_id" in r.json()["detail"] and "limit" in r.json()["detail"]
    # the parameters a route does take still work, including those of its dependencies
    ok = a.get("staff_a", "/api/residents?limit=2&offset=0&reveal=phone")
    assert ok.status_code == 200 and len(ok.json()["items"]) == 2
    assert a.client.get("/api/layers/buildings?limit=1&colour=red").status_code == 422
    assert a.client.get("/api/layers/buildings?limit=1").status_code == 200
    # pages ignore what a browser adds
    assert a.client.get("/login?utm_source=x").status_code == 200
