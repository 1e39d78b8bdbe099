"""Reports: residents' voice (survey rounds, per-dwelling codes, answers) and ratings (issue 15).

* ``survey_round``: a satisfaction survey of a period (opens, closes).
* ``survey_sheet``: the printed sheet of one building in one round; its ``token`` is in the
  QR code on the stairwell. ``survey_code``: one code per dwelling of the building, printed
  on the sheet's tear-off slips; a code is used once (``used_at``). Codes are not tied to a
  room: nobody can tell which dwelling answered.
* ``survey_answer``: the scores (1–5) of one used code; nothing else — no name, number,
  address or free text.
* ``resident_problem``: a problem of ``problem`` that a resident reported through a sheet
  (reported by the locked account ``residents-qr``, which cannot log in).
* ``public_throttle``: recent public submissions per key (a keyed hash of the client's
  address, a code, a sheet), kept one day, for the rate limits.
* ``committee_rating``: the star rating of a residents' committee as published by staff;
  the disclosure board shows the latest one.

The public pages have no user: they reach these tables only through the SECURITY DEFINER
functions below (``ga_public_*``), which check the sheet, the round, the code and the rate
limits themselves. The app's role gets no write on ``survey_answer``, ``resident_problem``
or ``public_throttle``, and no new right on ``problem``.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

APP_ROLE = "gridatlas_app"
DEFINER = "SECURITY DEFINER SET search_path = public, pg_temp"
RESIDENTS_ACCOUNT = "residents-qr"
TABLES = (
    "committee_rating",
    "public_throttle",
    "resident_problem",
    "survey_answer",
    "survey_code",
    "survey_sheet",
    "survey_round",
)
# limits: (key prefix, how many, within minutes)
ADDR_ANSWERS = (30, 10)
CODE_TRIES = (5, 10)
ADDR_PROBLEMS = (5, 60)
SHEET_ADDR_PROBLEMS = (20, 1440)  # one address on one sheet: a day's reports
SHEET_PROBLEMS = (300, 1440)  # everyone on one sheet: only against a flood
MAX_TEXT = 500
# what the app refuses too (gis.reports.voice): checked again here, not trusted
HTML_RE = "[<>]|&[#a-zA-Z0-9]+;"
# the client's address is never stored: a keyed hash of it, kept a day
ADDR_KEY = (
    "encode(hmac(convert_to(coalesce(addr, ''), 'UTF8'), coalesce((SELECT value FROM ga_secret "
    "WHERE name = 'login'), '\\x00'::bytea), 'sha256'), 'hex')"
)


def _tables() -> None:
    op.execute(
        """
        CREATE TABLE survey_round (
            id         bigserial PRIMARY KEY,
            label      text NOT NULL CHECK (length(btrim(label)) BETWEEN 1 AND 80),
            opens_at   timestamptz NOT NULL,
            closes_at  timestamptz NOT NULL CHECK (closes_at > opens_at),
            created_by bigint REFERENCES app_user (id) ON DELETE SET NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE survey_sheet (
            id          bigserial PRIMARY KEY,
            round_id    bigint NOT NULL REFERENCES survey_round (id) ON DELETE CASCADE,
            building_id bigint NOT NULL REFERENCES building (id) ON DELETE CASCADE,
            token       text NOT NULL UNIQUE CHECK (token ~ '^[A-Za-z0-9_-]{16,64}$'),
            created_at  timestamptz NOT NULL DEFAULT now(),
            UNIQUE (round_id, building_id)
        )
        """
    )
    op.execute("CREATE INDEX survey_sheet_building_idx ON survey_sheet (building_id)")
    op.execute(
        """
        CREATE TABLE survey_code (
            id       bigserial PRIMARY KEY,
            sheet_id bigint NOT NULL REFERENCES survey_sheet (id) ON DELETE CASCADE,
            code     text NOT NULL UNIQUE CHECK (code ~ '^[A-HJ-NP-Z2-9]{8}$'),
            used_at  timestamptz
        )
        """
    )
    op.execute("CREATE INDEX survey_code_sheet_idx ON survey_code (sheet_id)")
    op.execute(
        """
        CREATE TABLE survey_answer (
            code_id     bigint PRIMARY KEY REFERENCES survey_code (id) ON DELETE CASCADE,
            round_id    bigint NOT NULL REFERENCES survey_round (id) ON DELETE CASCADE,
            building_id bigint NOT NULL REFERENCES building (id) ON DELETE CASCADE,
            answered_at timestamptz NOT NULL DEFAULT now(),
            overall     smallint NOT NULL CHECK (overall BETWEEN 1 AND 5),
            service     smallint NOT NULL CHECK (service BETWEEN 1 AND 5),
            environment smallint NOT NULL CHECK (environment BETWEEN 1 AND 5),
            safety      smallint NOT NULL CHECK (safety BETWEEN 1 AND 5)
        )
        """
    )
    op.execute(
        "CREATE INDEX survey_answer_round_building_idx ON survey_answer (round_id, building_id)"
    )
    op.execute(
        """
        CREATE TABLE resident_problem (
            problem_id bigint PRIMARY KEY REFERENCES problem (id) ON DELETE CASCADE,
            sheet_id   bigint REFERENCES survey_sheet (id) ON DELETE SET NULL
        )
        """
    )
    op.execute(
        """
        CREATE TABLE public_throttle (
            key text NOT NULL,
            at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX public_throttle_key_at_idx ON public_throttle (key, at)")
    op.execute(
        """
        CREATE TABLE committee_rating (
            id           bigserial PRIMARY KEY,
            community_id bigint NOT NULL REFERENCES community (id) ON DELETE CASCADE,
            computed_at  timestamptz NOT NULL,
            stars        smallint CHECK (stars BETWEEN 1 AND 5),
            score        double precision CHECK (score BETWEEN 0 AND 1),
            capped_by    text[] NOT NULL DEFAULT '{}',
            detail       jsonb NOT NULL,
            computed_by  bigint REFERENCES app_user (id) ON DELETE SET NULL
        )
        """
    )
    op.execute(
        "CREATE INDEX committee_rating_community_idx ON committee_rating "
        "(community_id, computed_at)"
    )
    op.execute(
        f"INSERT INTO app_user (username, full_name, role, password_hash, is_active) VALUES "
        f"('{RESIDENTS_ACCOUNT}', '居民扫码 / residents (QR)', 'building_leader', '!', false) "
        "ON CONFLICT (username) DO NOTHING"
    )


def _throttled(key: str, limit: tuple[int, int]) -> str:
    """SQL: true when ``key`` has been counted ``limit`` times within its window."""
    n, minutes = limit
    return (
        f"(SELECT count(*) FROM public_throttle WHERE key = {key} "
        f"AND at > now() - interval '{minutes} minutes') >= {n}"
    )


def _functions() -> None:
    op.execute(
        f"""
        CREATE FUNCTION ga_public_sheet(tok text)
        RETURNS TABLE (sheet_id bigint, round_id bigint, round_label text, opens_at timestamptz,
                       closes_at timestamptz, building_id bigint, building_name text,
                       community_id bigint, community_name text, codes bigint, answers bigint)
        LANGUAGE sql STABLE {DEFINER} AS $$
          SELECT s.id, r.id, r.label, r.opens_at, r.closes_at, b.id, b.name, c.id, c.name,
                 (SELECT count(*) FROM survey_code k WHERE k.sheet_id = s.id),
                 (SELECT count(*) FROM survey_code k WHERE k.sheet_id = s.id
                     AND k.used_at IS NOT NULL)
            FROM survey_sheet s JOIN survey_round r ON r.id = s.round_id
            JOIN building b ON b.id = s.building_id
            LEFT JOIN community c ON c.id = b.community_id
           WHERE s.token = tok
        $$
        """
    )
    addr, code_key = "'addr:' || " + ADDR_KEY, "'code:' || upper(code)"
    op.execute(
        f"""
        CREATE FUNCTION ga_public_answer(tok text, code text, addr text, scores smallint[])
        RETURNS text LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        DECLARE
          s record;
          k record;
        BEGIN
          -- parallel requests of one address (or one code) wait for each other here, so
          -- that none of them slips past the count below
          PERFORM pg_advisory_xact_lock(hashtext({addr}));
          PERFORM pg_advisory_xact_lock(hashtext({code_key}));
          DELETE FROM public_throttle WHERE at < now() - interval '1 day';
          IF {_throttled(addr, ADDR_ANSWERS)} OR {_throttled(code_key, CODE_TRIES)} THEN
            RETURN 'rate_limited';
          END IF;
          INSERT INTO public_throttle (key) VALUES ({addr}), ({code_key});
          SELECT sh.id, sh.round_id, sh.building_id, r.opens_at, r.closes_at INTO s
            FROM survey_sheet sh JOIN survey_round r ON r.id = sh.round_id WHERE sh.token = tok;
          IF NOT FOUND THEN
            RETURN 'no_sheet';
          END IF;
          IF now() < s.opens_at OR now() >= s.closes_at THEN
            RETURN 'closed';
          END IF;
          IF coalesce(array_length(scores, 1), 0) <> 4
             OR EXISTS (SELECT 1 FROM unnest(scores) v WHERE v IS NULL OR v NOT BETWEEN 1 AND 5)
          THEN
            RETURN 'bad_scores';
          END IF;
          SELECT c.id, c.used_at INTO k FROM survey_code c
           WHERE c.sheet_id = s.id AND c.code = upper(ga_public_answer.code) FOR UPDATE;
          IF NOT FOUND THEN
            RETURN 'bad_code';
          END IF;
          IF k.used_at IS NOT NULL THEN
            RETURN 'used';
          END IF;
          UPDATE survey_code SET used_at = now() WHERE id = k.id;
          INSERT INTO survey_answer (code_id, round_id, building_id, overall, service,
                                     environment, safety)
          VALUES (k.id, s.round_id, s.building_id, scores[1], scores[2], scores[3], scores[4]);
          RETURN 'ok';
        END $$
        """
    )
    sheet_key = "'sheet:' || tok"
    sheet_addr = "'sheet:' || tok || ':' || " + ADDR_KEY
    op.execute(
        f"""
        CREATE FUNCTION ga_public_problem(tok text, addr text, cat text, descr text)
        RETURNS TABLE (status text, problem_id bigint)
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        DECLARE
          s record;
          uid bigint := (SELECT id FROM app_user WHERE username = '{RESIDENTS_ACCOUNT}');
          pid bigint;
        BEGIN
          PERFORM pg_advisory_xact_lock(hashtext({addr}));
          PERFORM pg_advisory_xact_lock(hashtext({sheet_key}));
          DELETE FROM public_throttle WHERE at < now() - interval '1 day';
          IF {_throttled(addr, ADDR_PROBLEMS)} OR {_throttled(sheet_addr, SHEET_ADDR_PROBLEMS)}
             OR {_throttled(sheet_key, SHEET_PROBLEMS)} THEN
            RETURN QUERY SELECT 'rate_limited'::text, NULL::bigint;
            RETURN;
          END IF;
          INSERT INTO public_throttle (key) VALUES ({addr}), ({sheet_addr}), ({sheet_key});
          IF descr IS NULL OR length(btrim(descr)) = 0 OR length(descr) > {MAX_TEXT}
             OR descr ~ '{HTML_RE}' THEN
            RETURN QUERY SELECT 'bad_text'::text, NULL::bigint;
            RETURN;
          END IF;
          SELECT sh.id, sh.building_id, r.closes_at INTO s
            FROM survey_sheet sh JOIN survey_round r ON r.id = sh.round_id WHERE sh.token = tok;
          IF NOT FOUND THEN
            RETURN QUERY SELECT 'no_sheet'::text, NULL::bigint;
            RETURN;
          END IF;
          IF now() >= s.closes_at THEN
            RETURN QUERY SELECT 'sheet_closed'::text, NULL::bigint;
            RETURN;
          END IF;
          INSERT INTO problem (building_id, category, description, handling, reported_by,
                               reported_at, updated_at, geom)
          SELECT b.id, cat, descr, 'immediate', uid, now(), now(), ST_PointOnSurface(b.geom)
            FROM building b WHERE b.id = s.building_id
          RETURNING id INTO pid;
          INSERT INTO problem_event (problem_id, user_id, at, from_status, to_status, note)
          VALUES (pid, uid, now(), NULL, 'reported', 'reported by a resident (QR sheet)');
          INSERT INTO resident_problem (problem_id, sheet_id) VALUES (pid, s.id);
          RETURN QUERY SELECT 'ok'::text, pid;
        END $$
        """
    )
    # the disclosure board: problems of a community by category, counts only, as of the
    # start of a day (``asof``, never later than today's): a snapshot, so that nobody can
    # watch their own reports move it. A resident's report counts once staff have taken it
    # on (an event to a status beyond ``reported`` before ``asof``): unchecked anonymous
    # reports would let anyone add to a withheld count and read it back.
    op.execute(
        f"""
        CREATE FUNCTION ga_public_problem_counts(cid bigint, since timestamptz, asof timestamptz)
        RETURNS TABLE (category text, opened bigint, closed bigint, open_now bigint)
        LANGUAGE sql STABLE {DEFINER} AS $$
          WITH cut AS (SELECT least(asof, date_trunc('day', now())) AS at),
          p AS (
            -- the status at the cut: the last event before it (a problem written without
            -- events, by an import, has its status as it is)
            SELECT p.id, p.category, p.reported_at,
                   CASE WHEN EXISTS (SELECT 1 FROM problem_event e WHERE e.problem_id = p.id)
                        THEN coalesce((SELECT e.to_status FROM problem_event e
                                        WHERE e.problem_id = p.id AND e.at < cut.at
                                        ORDER BY e.at DESC, e.id DESC LIMIT 1), 'reported')
                        ELSE p.status END AS status_then,
                   EXISTS (SELECT 1 FROM resident_problem rp WHERE rp.problem_id = p.id)
                     AS by_resident,
                   EXISTS (SELECT 1 FROM problem_event e WHERE e.problem_id = p.id
                              AND e.to_status = 'closed' AND e.at >= since
                              AND e.at < cut.at) AS closed_in_window
              FROM problem p JOIN building b ON b.id = p.building_id, cut
             WHERE b.community_id = cid AND p.reported_at < cut.at
          )
          SELECT p.category,
                 count(*) FILTER (WHERE p.reported_at >= since),
                 count(*) FILTER (WHERE p.closed_in_window AND p.status_then = 'closed'),
                 count(*) FILTER (WHERE p.status_then <> 'closed')
            FROM p
           WHERE NOT p.by_resident OR p.status_then <> 'reported'
           GROUP BY p.category
        $$
        """
    )


def _rights() -> None:
    op.execute("ALTER TABLE survey_sheet ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY survey_sheet_scope ON survey_sheet USING "
        "(building_id IN (SELECT ga_people_buildings())) "
        "WITH CHECK (building_id IN (SELECT ga_people_buildings()))"
    )
    op.execute("ALTER TABLE survey_code ENABLE ROW LEVEL SECURITY")
    via_sheet = "EXISTS (SELECT 1 FROM survey_sheet s WHERE s.id = sheet_id)"
    op.execute(
        f"CREATE POLICY survey_code_scope ON survey_code USING ({via_sheet}) "
        f"WITH CHECK ({via_sheet})"
    )
    op.execute(f"REVOKE ALL ON {', '.join(TABLES)} FROM {APP_ROLE}, PUBLIC")
    op.execute(f"GRANT SELECT, INSERT ON survey_round, survey_sheet, survey_code TO {APP_ROLE}")
    # anonymous scores and problem ids: read for the reports, written by the functions only
    op.execute(f"GRANT SELECT ON survey_answer, resident_problem TO {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT ON committee_rating TO {APP_ROLE}")
    op.execute(
        f"GRANT USAGE, SELECT ON SEQUENCE survey_round_id_seq, survey_sheet_id_seq, "
        f"survey_code_id_seq, committee_rating_id_seq TO {APP_ROLE}"
    )
    for fn in (
        "ga_public_sheet(text)",
        "ga_public_answer(text, text, text, smallint[])",
        "ga_public_problem(text, text, text, text)",
        "ga_public_problem_counts(bigint, timestamptz, timestamptz)",
    ):
        op.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {fn} TO {APP_ROLE}")


def upgrade() -> None:
    _tables()
    _functions()
    _rights()


def downgrade() -> None:
    for fn in (
        "ga_public_sheet(text)",
        "ga_public_answer(text, text, text, smallint[])",
        "ga_public_problem(text, text, text, text)",
        "ga_public_problem_counts(bigint, timestamptz, timestamptz)",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}")
    op.execute(
        f"DELETE FROM problem WHERE reported_by = (SELECT id FROM app_user "
        f"WHERE username = '{RESIDENTS_ACCOUNT}')"
    )
    for table in TABLES:
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    op.execute(f"DELETE FROM app_user WHERE username = '{RESIDENTS_ACCOUNT}'")
