"""A name that looks like a template is shown as itself on every map page, never run.

Branca rendered Folium's output a second time as Jinja source (layers/page.py has the
fix): a building, community or facility named ``{{ 7*7 }}{% if true %}RAN{% endif %}``
came out as ``49RAN``, and a name written to reach Python's objects would have run code on
the server. Each map page is asked for as the roles that open it (the reach pages need a reach
run, which this fixture has not: their layers are Folium elements of the kinds that
tests/test_layers_no_template_injection.py tries).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from gis import db

NAME = "{{ 7*7 }}{% if true %}RAN{% endif %}"
RAN = "49RAN"


@pytest.mark.parametrize(
    ("user", "path"),
    [
        ("admin", "/map"),
        ("admin", "/map/groups"),
        ("staff_a", "/app/leaders"),
        ("worker_a1", "/app/grid"),
        ("worker_a1", "/app/patrol"),
    ],
)
def test_names_like_templates_stay_text_on_map_pages(api, user, path) -> None:
    client, info, url = api
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.begin() as conn:
        conn.execute(sa.text("UPDATE building SET name = :n"), {"n": NAME})
        for table in ("community", "grid", "subdistrict"):
            conn.execute(sa.text(f"UPDATE {table} SET name = :n"), {"n": NAME})
    eng.dispose()
    page = client.get(user, path)
    assert page.status_code == 200, page.text[:300]
    assert RAN not in page.text
