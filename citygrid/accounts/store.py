"""SQL of the accounts package (users, API tokens, web sessions), every value bound."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

_USER_COLUMNS = "u.user_id, u.username, u.display_name, u.roles, u.district_code, u.team_code, u.party_code, " \
                "u.created_at, u.disabled_at"


def insert_user(conn: Connection, *, username: str, display_name: str, roles: list[str], district: str | None,
                team: str | None, password_hash: str | None, party: str | None = None) -> dict[str, Any]:
    row = conn.execute(sa.text(
        f"""INSERT INTO users AS u (username, display_name, roles, district_code, team_code, party_code,
                                    password_hash)
            VALUES (:username, :display_name, :roles, :district, :team, :party, :password_hash)
            RETURNING {_USER_COLUMNS}"""),
        {"username": username, "display_name": display_name, "roles": roles, "district": district, "team": team,
         "party": party, "password_hash": password_hash}).mappings().one()
    return dict(row)


def update_roles(conn: Connection, user_id: int, *, roles: list[str], team: str | None, party: str | None,
                 district: str | None) -> dict[str, Any]:
    row = conn.execute(sa.text(
        f"""UPDATE users AS u SET roles = :roles, team_code = :team, party_code = :party, district_code = :district
             WHERE u.user_id = :id RETURNING {_USER_COLUMNS}"""),
        {"id": user_id, "roles": roles, "team": team, "party": party, "district": district}).mappings().one()
    return dict(row)


def user_by_name(conn: Connection, username: str) -> dict[str, Any] | None:
    row = conn.execute(sa.text(f"SELECT {_USER_COLUMNS}, u.password_hash FROM users u WHERE u.username = :u"),
                       {"u": username}).mappings().first()
    return dict(row) if row else None


def list_users(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(sa.text(
        f"""SELECT {_USER_COLUMNS},
                   (SELECT count(*) FROM api_tokens t WHERE t.user_id = u.user_id AND t.revoked_at IS NULL
                       AND (t.expires_at IS NULL OR t.expires_at > now())) AS active_tokens
              FROM users u ORDER BY u.username""")).mappings().all()
    return [dict(r) for r in rows]


def set_disabled(conn: Connection, username: str, disabled: bool) -> bool:
    result = conn.execute(sa.text(
        """UPDATE users SET disabled_at = CASE WHEN :disabled THEN coalesce(disabled_at, now()) END
            WHERE username = :u"""), {"u": username, "disabled": disabled})
    if disabled:
        conn.execute(sa.text(
            """UPDATE user_sessions SET ended_at = now() WHERE ended_at IS NULL
                  AND user_id = (SELECT user_id FROM users WHERE username = :u)"""), {"u": username})
    return result.rowcount == 1


def set_password_hash(conn: Connection, user_id: int, password_hash: str) -> None:
    conn.execute(sa.text("UPDATE users SET password_hash = :h WHERE user_id = :id"),
                 {"h": password_hash, "id": user_id})


def end_credentials(conn: Connection, user_id: int) -> dict[str, int]:
    """End every live session and revoke every active API token of a user; returns how many of each."""
    sessions = conn.execute(sa.text(
        "UPDATE user_sessions SET ended_at = now() WHERE user_id = :id AND ended_at IS NULL"), {"id": user_id})
    tokens = conn.execute(sa.text(
        "UPDATE api_tokens SET revoked_at = now() WHERE user_id = :id AND revoked_at IS NULL"), {"id": user_id})
    return {"sessions_ended": sessions.rowcount, "tokens_revoked": tokens.rowcount}


def insert_token(conn: Connection, user_id: int, token_hash: bytes, label: str,
                 expires_at: dt.datetime | None) -> dict[str, Any]:
    row = conn.execute(sa.text(
        """INSERT INTO api_tokens (user_id, token_hash, label, expires_at) VALUES (:u, :h, :label, :exp)
           RETURNING token_id, label, created_at, expires_at"""),
        {"u": user_id, "h": token_hash, "label": label, "exp": expires_at}).mappings().one()
    return dict(row)


def revoke_token(conn: Connection, token_id: int) -> bool:
    result = conn.execute(sa.text(
        "UPDATE api_tokens SET revoked_at = now() WHERE token_id = :t AND revoked_at IS NULL"), {"t": token_id})
    return result.rowcount == 1


def user_for_token(conn: Connection, token_hash: bytes) -> dict[str, Any] | None:
    """The enabled user holding an unexpired, unrevoked token with this digest."""
    row = conn.execute(sa.text(
        f"""SELECT {_USER_COLUMNS} FROM api_tokens t JOIN users u USING (user_id)
             WHERE t.token_hash = :h AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())
               AND u.disabled_at IS NULL"""), {"h": token_hash}).mappings().first()
    return dict(row) if row else None


def insert_session(conn: Connection, session_hash: bytes, user_id: int, csrf_token: str, hours: float) -> None:
    conn.execute(sa.text(
        """INSERT INTO user_sessions (session_hash, user_id, csrf_token, expires_at)
           VALUES (:h, :u, :csrf, now() + make_interval(secs => :secs))"""),
        {"h": session_hash, "u": user_id, "csrf": csrf_token, "secs": hours * 3600})


def user_for_session(conn: Connection, session_hash: bytes) -> dict[str, Any] | None:
    """The enabled user of a live session with this digest, with the session's CSRF token."""
    row = conn.execute(sa.text(
        f"""SELECT {_USER_COLUMNS}, s.csrf_token FROM user_sessions s JOIN users u USING (user_id)
             WHERE s.session_hash = :h AND s.ended_at IS NULL AND s.expires_at > now()
               AND u.disabled_at IS NULL"""), {"h": session_hash}).mappings().first()
    return dict(row) if row else None


def end_session(conn: Connection, session_hash: bytes) -> None:
    conn.execute(sa.text("UPDATE user_sessions SET ended_at = now() WHERE session_hash = :h AND ended_at IS NULL"),
                 {"h": session_hash})


def team_exists(conn: Connection, team: str) -> bool:
    return conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM supervision_teams WHERE code = :t)"),
                        {"t": team}).scalar_one()


def party_districts(conn: Connection, code: str) -> list[str]:
    """The districts that have a party with this ``parties.code`` (of any kind)."""
    return list(conn.execute(sa.text(
        "SELECT DISTINCT district_code FROM parties WHERE code = :c ORDER BY district_code"), {"c": code}).scalars())


def district_exists(conn: Connection, district: str) -> bool:
    return conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM districts WHERE district_code = :d)"),
                        {"d": district}).scalar_one()


def audit_entries(conn: Connection, *, object_kind: str | None, object_id: str | None, actor: str | None,
                  district: str | None, start: str | None, end: str | None, limit: int,
                  offset: int) -> list[dict[str, Any]]:
    """Audit rows matching every given filter (all bound), newest first."""
    rows = conn.execute(sa.text(
        """SELECT audit_id, district_code, at, actor, action, object_kind, object_id, before, after
             FROM audit_log
            WHERE (CAST(:kind AS text) IS NULL OR object_kind = :kind)
              AND (CAST(:oid AS text) IS NULL OR object_id = :oid)
              AND (CAST(:actor AS text) IS NULL OR actor = :actor)
              AND (CAST(:district AS text) IS NULL OR district_code = :district)
              AND (CAST(:start AS timestamptz) IS NULL OR at >= CAST(:start AS timestamptz))
              AND (CAST(:end AS timestamptz) IS NULL OR at < CAST(:end AS timestamptz))
            ORDER BY at DESC, audit_id DESC LIMIT :limit OFFSET :offset"""),
        {"kind": object_kind, "oid": object_id, "actor": actor, "district": district, "start": start, "end": end,
         "limit": limit, "offset": offset}).mappings().all()
    return [dict(r) for r in rows]



def take_login_token(conn: Connection, key: str, per_minute: float, burst: float, spend: bool) -> float:
    """Refill the token bucket ``key`` (``per_minute``, at most ``burst``), spend one when ``spend`` and one is
    there; returns the tokens left before spending (below 1: refused). The row is locked until the caller's
    transaction ends, so concurrent sign-ins on one key are counted one after another. Buckets untouched for
    a day (full again long since) are dropped."""
    conn.execute(sa.text("DELETE FROM login_limits WHERE updated_at < now() - interval '1 day'"))
    tokens = conn.execute(sa.text(
        """INSERT INTO login_limits AS l (key, tokens) VALUES (:k, :burst)
           ON CONFLICT (key) DO UPDATE SET
               tokens = least(:burst, l.tokens + extract(epoch FROM now() - l.updated_at) * :rate),
               updated_at = now()
           RETURNING tokens"""), {"k": key, "burst": burst, "rate": per_minute / 60.0}).scalar_one()
    if spend and tokens >= 1.0:
        conn.execute(sa.text("UPDATE login_limits SET tokens = tokens - 1 WHERE key = :k"), {"k": key})
    return float(tokens)


def give_back_login_token(conn: Connection, key: str, burst: float) -> None:
    """Return a token spent on a sign-in that succeeded."""
    conn.execute(sa.text("UPDATE login_limits SET tokens = least(:burst, tokens + 1) WHERE key = :k"),
                 {"k": key, "burst": burst})
