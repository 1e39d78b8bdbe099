"""An answer leaves only after its transaction has committed (over real HTTP, uvicorn)."""

from __future__ import annotations

import httpx
import sqlalchemy as sa

from gis import db, i18n
from tests.api.conftest import password
from tests.conftest import serve_app


def _login(client: httpx.Client, username: str) -> None:
    r = client.post("/api/auth/login", json={"username": username, "password": password(username)})
    assert r.status_code == 200, r.text
    client.headers["Authorization"] = f"Bearer {r.json()['token']}"


def test_every_answer_is_committed_when_the_client_has_it(people):
    url, info = people
    owner = db.create_engine(url, poolclass=sa.NullPool)
    rid = info.residents["a1"][0]
    with serve_app(url) as base, httpx.Client(base_url=base, timeout=30) as client, \
            owner.connect() as check:  # fmt: skip
        _login(client, "staff_a")
        uid = info.users["staff_a"]
        reads = sa.text(
            "SELECT count(*) FROM audit_log WHERE user_id = :u AND action = 'read' "
            "AND subject = 'resident' AND :r = ANY(subject_ids)"
        )
        for i in range(100):
            r = client.get(f"/api/residents/{rid}")
            assert r.status_code == 200
            # autocommit reads: each sees what was committed at that moment
            assert check.scalar(reads, {"u": uid, "r": rid}) == i + 1, f"read {i}"
            check.rollback()
        for i in range(100):
            r = client.post(
                "/api/ledgers/backbone",
                json={"resident_id": info.residents["a1"][i % 3], "role": "volunteer",
                      "notes": f"第{i}次"},
            )  # fmt: skip
            assert r.status_code in (201, 409), r.text
            if r.status_code == 201:
                row = check.scalar(
                    sa.text("SELECT notes FROM backbone WHERE id = :i"), {"i": r.json()["id"]}
                )
                check.rollback()
                assert row == f"第{i}次", f"create {i}"
            else:  # the same resident and role again: delete and go on
                check.rollback()
        for i in range(100):
            body = {"name": f"测试{i}", "kind": "shop", "community_id": info.community_a}
            r = client.post("/api/ledgers/organisations", json=body)
            assert r.status_code == 201, r.text
            found = check.scalar(
                sa.text("SELECT name FROM organisation WHERE id = :i"), {"i": r.json()["id"]}
            )
            check.rollback()
            assert found == f"测试{i}", f"organisation {i}"
    owner.dispose()


def test_a_commit_that_fails_is_never_acknowledged(people):
    url, info = people
    owner = db.create_engine(url, poolclass=sa.NullPool)
    count = sa.text("SELECT count(*) FROM special_group")
    with owner.begin() as conn:  # a check that runs only at COMMIT, and refuses
        before = conn.scalar(count)
        conn.execute(
            sa.text(
                "CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN RAISE EXCEPTION 'refused at commit'; END $$"
            )
        )
        conn.execute(
            sa.text(
                "CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON special_group "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit()"
            )
        )
    with serve_app(url) as base, httpx.Client(base_url=base, timeout=30) as client:
        _login(client, "staff_a")
        r = client.post(
            "/api/ledgers/special_groups",
            json={"resident_id": info.residents["a1"][0], "category": "other", "notes": "不应保存"},
        )
        assert r.status_code == 503, r.text
        # the server refused the COMMIT, so it rolled back: "nothing was stored" is true here
        assert int(r.headers["retry-after"]) > 0
        assert "nothing of it was stored" in r.json()["detail"]
        assert r.json()["message"] == i18n.t("commit.refused", "zh")
    with owner.connect() as conn:
        assert conn.scalar(count) == before
    owner.dispose()


def test_a_commit_cut_off_says_it_may_or_may_not_have_been_stored(people):
    # The backend ends while it commits (as when the server or the network goes away): the
    # client cannot know whether the commit record reached the disk, and must not be told
    # "nothing was stored" (it may be there; a retry without its key would store it twice).
    url, info = people
    owner = db.create_engine(url, poolclass=sa.NullPool)
    with owner.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE FUNCTION end_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(5); "
                "RETURN NULL; END $$"
            )
        )
        conn.execute(
            sa.text(
                "CREATE CONSTRAINT TRIGGER end_at_commit AFTER INSERT ON special_group "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION end_at_commit()"
            )
        )
    with serve_app(url) as base, httpx.Client(base_url=base, timeout=30) as client:
        _login(client, "staff_a")
        body = {"resident_id": info.residents["a1"][0], "category": "other", "notes": "未知"}
        r = client.post("/api/ledgers/special_groups", json=body)
        assert r.status_code == 503, r.text
        assert "may or may not" in r.json()["detail"]
        assert "nothing" not in r.json()["detail"]
        assert r.json()["message"] == i18n.t("commit.unconfirmed", "zh")
        assert client.get("/api/health").status_code == 200  # the pool let the dead one go
    owner.dispose()
