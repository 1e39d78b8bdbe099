"""A login token stops working when the login ends: logout, a deactivated user, expiry."""

from __future__ import annotations

import sqlalchemy as sa

from gis import db
from gis.security import Keys
from gis.settings import Settings


def _owner(url: str):
    return db.create_engine(url, poolclass=sa.NullPool)


def _token(a, username: str) -> str:
    return a.as_(username)["Authorization"].removeprefix("Bearer ")


def _residents_seen_by_app_role(url: str, token: str) -> int:
    """``SELECT count(*) FROM resident`` as the app's role, with ``ga.session`` = token."""
    eng = db.create_engine(
        db.app_role_url(url, Keys.from_settings(Settings()).db_password()), poolclass=sa.NullPool
    )
    with eng.begin() as conn:
        conn.execute(sa.text("SELECT set_config('ga.session', :t, true)"), {"t": token})
        n = conn.scalar(sa.text("SELECT count(*) FROM resident"))
    eng.dispose()
    return int(n)


def test_logout_ends_the_token(api):
    a, info, _url = api
    rid = info.residents["a1"][0]
    assert a.get("staff_a", f"/api/residents/{rid}").status_code == 200
    headers = a.as_("staff_a")
    r = a.client.post("/api/auth/logout", headers=headers)
    assert r.status_code == 204
    a.client.cookies.clear()
    for path in (f"/api/residents/{rid}", "/api/auth/me"):
        r = a.client.get(path, headers=headers)
        assert r.status_code == 401, (path, r.status_code)
        assert r.headers["www-authenticate"] == "Bearer"
    # the other logins of the same database are untouched
    assert a.get("staff_b", "/api/auth/me").status_code == 200


def test_a_deactivated_users_token_stops_working(api):
    a, info, url = api
    token = _token(a, "worker_a1")
    n = len(info.residents["a1"])
    assert _residents_seen_by_app_role(url, token) == n
    r = a.post("admin", f"/api/users/{info.users['worker_a1']}/deactivate")
    assert r.status_code == 200 and r.json() == {"id": info.users["worker_a1"], "is_active": False}
    a.client.cookies.clear()
    r = a.client.get("/api/residents", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert _residents_seen_by_app_role(url, token) == 0
    eng = _owner(url)
    with eng.connect() as conn:  # the logins were ended, not only refused
        sessions = conn.scalar(
            sa.text("SELECT count(*) FROM auth_session WHERE user_id = :u"),
            {"u": info.users["worker_a1"]},
        )
    eng.dispose()
    assert sessions == 0
    # and the password no longer logs in
    r = a.client.post(
        "/api/auth/login", json={"username": "worker_a1", "password": "pw-worker_a1-2026"}
    )
    assert r.status_code == 401
    # a non-admin cannot deactivate anyone, and nothing changes
    r = a.post("staff_a", f"/api/users/{info.users['staff_b']}/deactivate")
    assert r.status_code == 403
    assert a.get("staff_b", "/api/auth/me").status_code == 200


def test_an_inactive_user_with_a_live_session_is_refused(api):
    """A user switched off in the database (not through the API, so their session is still
    there) is refused by the API and by row-level security alike."""
    a, info, url = api
    token = _token(a, "leader_a1")
    assert _residents_seen_by_app_role(url, token) > 0
    eng = _owner(url)
    with eng.begin() as conn:
        conn.execute(
            sa.text("UPDATE app_user SET is_active = false WHERE id = :u"),
            {"u": info.users["leader_a1"]},
        )
    eng.dispose()
    a.client.cookies.clear()
    r = a.client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert _residents_seen_by_app_role(url, token) == 0


def test_an_expired_session_is_refused_by_the_api_and_by_row_level_security(api):
    a, info, url = api
    token = _token(a, "staff_a")
    n = len(info.residents["a1"]) + len(info.residents["a2"])
    assert _residents_seen_by_app_role(url, token) == n
    eng = _owner(url)
    with eng.begin() as conn:
        ended = conn.execute(
            sa.text(
                "UPDATE auth_session SET expires_at = now() - interval '1 minute' "
                "WHERE user_id = :u"
            ),
            {"u": info.users["staff_a"]},
        ).rowcount
    eng.dispose()
    assert ended == 1
    a.client.cookies.clear()
    r = a.client.get("/api/residents", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert _residents_seen_by_app_role(url, token) == 0
