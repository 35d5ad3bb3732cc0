"""The specialists who sign in to the agent console: accounts, passwords and console sessions.

A store on the product database (``bot.db.engine.Database``; tables ``agents`` and
``agent_sessions``). Every public method is one short transaction (``agent_for_session`` adds a
second, tiny one at most once a minute to record that the agent was seen) and returns frozen
snapshots (``AgentView``). Passwords are kept as scrypt hashes (``bot.handoff.passwords``), session
tokens as their SHA-256 only; nothing here logs either.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
from dataclasses import fields
from datetime import timedelta
from typing import Any, List, Optional

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.db.engine import Database
from bot.db.models import Agent, AgentSession
from bot.handoff.passwords import hash_password, verify_password
from bot.handoff.views import AgentView, HandoffError

__all__ = ["AgentStore", "active_agent"]

logger = logging.getLogger(__name__)

LAST_SEEN_EVERY = timedelta(seconds=60)
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")


def _normalize_username(username: Any) -> str:
    if not isinstance(username, str):
        raise ValueError("The username must be a string.")
    name = username.strip().lower()
    if not USERNAME_RE.match(name):
        raise ValueError(
            "Usernames are 1 to 64 characters: letters, digits, '.', '_', '@' or '-', starting with a letter or digit."
        )
    return name


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


_dummy_hash_lock = threading.Lock()
_dummy_hash: Optional[str] = None


def _dummy_password_hash() -> str:
    """A real hash of a random password, verified against for unknown usernames (similar timing)."""
    global _dummy_hash
    with _dummy_hash_lock:
        if _dummy_hash is None:
            _dummy_hash = hash_password(secrets.token_urlsafe(24))
        return _dummy_hash


def agent_view(a: Agent) -> AgentView:
    return AgentView(
        id=a.id,
        username=a.username,
        display_name=a.display_name,
        is_active=bool(a.is_active),
        created_at=a.created_at,
        last_seen_at=a.last_seen_at,
    )


def active_agent(s: Session, agent_id: Any) -> Agent:
    """The active agent ``agent_id`` in the session ``s``; HandoffError if there is none."""
    agent = s.get(Agent, agent_id) if isinstance(agent_id, int) else None
    if agent is None or not agent.is_active:
        raise HandoffError(f"There is no active agent {agent_id}.")
    return agent


class AgentStore:
    """Agents and their console sessions (blocking calls: run them in a thread from async code)."""

    def __init__(self, db: Database):
        self.db = db

    # ------------------------------------------------------------------ agents
    def create_agent(self, username: str, password: str, display_name: Optional[str] = None) -> AgentView:
        name = _normalize_username(username)
        shown = (display_name or "").strip() or name
        if len(shown) > 200:
            raise ValueError("The display name is too long (at most 200 characters).")
        password_hash = hash_password(password)  # slow on purpose: outside the transaction
        duplicate = HandoffError(f"An agent named '{name}' already exists.")
        try:
            with self.db.writing() as s:
                if s.execute(select(Agent.id).where(Agent.username == name)).first() is not None:
                    raise duplicate
                agent = Agent(
                    username=name,
                    display_name=shown,
                    password_hash=password_hash,
                    is_active=True,
                    created_at=self.db.now(),
                )
                s.add(agent)
                s.flush()
                view = agent_view(agent)
        except IntegrityError:
            raise duplicate from None
        logger.info("Agent %s created.", name)
        return view

    @staticmethod
    def _agent_by_name(s: Session, username: str) -> Agent:
        name = _normalize_username(username)
        agent = s.execute(select(Agent).where(Agent.username == name)).scalar_one_or_none()
        if agent is None:
            raise HandoffError(f"There is no agent named '{name}'.")
        return agent

    def set_password(self, username: str, password: str) -> None:
        """New password; the agent's existing sessions are signed out."""
        password_hash = hash_password(password)
        with self.db.writing() as s:
            agent = self._agent_by_name(s, username)
            agent.password_hash = password_hash
            s.execute(delete(AgentSession).where(AgentSession.agent_id == agent.id))

    def set_active(self, username: str, active: bool) -> AgentView:
        """(De)activates an agent; deactivating also signs out their sessions."""
        with self.db.writing() as s:
            agent = self._agent_by_name(s, username)
            agent.is_active = bool(active)
            if not active:
                s.execute(delete(AgentSession).where(AgentSession.agent_id == agent.id))
            s.flush()
            return agent_view(agent)

    def get_agent(self, agent_id: int) -> Optional[AgentView]:
        with self.db.reading() as s:
            agent = s.get(Agent, agent_id)
            return agent_view(agent) if agent is not None else None

    def list_agents(self) -> List[AgentView]:
        with self.db.reading() as s:
            return [agent_view(a) for a in s.execute(select(Agent).order_by(Agent.username)).scalars().all()]

    def authenticate(self, username: str, password: str) -> Optional[AgentView]:
        """The active agent with these credentials, or None (similar timing for unknown usernames)."""
        try:
            name: Optional[str] = _normalize_username(username)
        except ValueError:
            name = None
        found = None
        if name is not None:
            with self.db.reading() as s:
                agent = s.execute(select(Agent).where(Agent.username == name)).scalar_one_or_none()
                if agent is not None:
                    found = (agent_view(agent), agent.password_hash)
        password = password if isinstance(password, str) else ""
        if found is None:
            verify_password(password, _dummy_password_hash())
            return None
        view, stored = found
        if not verify_password(password, stored) or not view.is_active:
            return None
        return view

    # ------------------------------------------------------------------ sessions
    def create_session(self, agent_id: int, ttl_seconds: int = 12 * 3600) -> str:
        """A new sign-in session; returns the raw token (only its SHA-256 is stored)."""
        if int(ttl_seconds) <= 0:
            raise ValueError("ttl_seconds must be positive.")
        token = secrets.token_urlsafe(32)
        with self.db.writing() as s:
            agent = active_agent(s, agent_id)
            now = self.db.now()
            s.execute(delete(AgentSession).where(AgentSession.expires_at <= now))  # housekeeping
            s.add(
                AgentSession(
                    token_hash=_token_hash(token),
                    agent_id=agent.id,
                    created_at=now,
                    expires_at=now + timedelta(seconds=int(ttl_seconds)),
                )
            )
        return token

    def agent_for_session(self, token: str) -> Optional[AgentView]:
        """The active agent signed in with ``token``, or None (unknown, expired, revoked, inactive)."""
        if not isinstance(token, str) or not token or len(token) > 512:
            return None
        digest = _token_hash(token)
        now = self.db.now()
        with self.db.reading() as s:
            row = s.execute(
                select(AgentSession.expires_at, Agent)
                .join(Agent, AgentSession.agent_id == Agent.id)
                .where(AgentSession.token_hash == digest)
            ).first()
            if row is None:
                return None
            expires_at, agent = row
            if expires_at <= now or not agent.is_active:
                return None
            view = agent_view(agent)
        if view.last_seen_at is None or now - view.last_seen_at >= LAST_SEEN_EVERY:
            with self.db.writing() as s:
                s.execute(
                    update(Agent)
                    .where(
                        Agent.id == view.id,
                        or_(Agent.last_seen_at.is_(None), Agent.last_seen_at <= now - LAST_SEEN_EVERY),
                    )
                    .values(last_seen_at=now)
                    .execution_options(synchronize_session=False)
                )
            view = AgentView(**{**{f.name: getattr(view, f.name) for f in fields(view)}, "last_seen_at": now})
        return view

    def revoke_session(self, token: str) -> None:
        if not isinstance(token, str) or not token:
            return
        with self.db.writing() as s:
            s.execute(delete(AgentSession).where(AgentSession.token_hash == _token_hash(token)))
