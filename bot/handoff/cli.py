"""Admin commands of the hand-off (agents, figures) and of the product database: ``python -m bot.handoff.cli COMMAND``.

    migrate                                 create or upgrade the schema (safe to repeat)
    create-agent USERNAME [--display-name]  add a specialist who can sign in to the agent console
    set-password USERNAME                   change a password (signs the agent out everywhere)
    deactivate USERNAME / activate USERNAME stop / allow an agent's sign-in
    list-agents                             the agents, their state and when they were last seen
    stats                                   queue and outcome figures, as JSON
    unknown-banks [--limit N] [--json]      bank names customers gave that data/banks.yml lacks, most frequent first
    unknown-banks --dismiss NAME            forget a name (once it is added to data/banks.yml)

The database is ``--db-url``, else ``HANDOFF_DB_URL``, else SQLite under var/. Passwords are read
with a hidden prompt, or from the ``AGENT_PASSWORD`` environment variable when standard input is not
a terminal (scripts, CI); never from the command line, where other users could see them.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Optional, Sequence

from bot.db.engine import Database
from bot.handoff.agents import AgentStore
from bot.handoff.tickets import TicketStore
from bot.handoff.views import HandoffError


class CliError(Exception):
    pass


def _read_password(confirm: bool = True) -> str:
    if not sys.stdin.isatty():
        password = os.environ.get("AGENT_PASSWORD")
        if not password:
            raise CliError("Standard input is not a terminal: set AGENT_PASSWORD to the password.")
        return password
    password = getpass.getpass("Password (at least 8 characters): ")
    if confirm and getpass.getpass("Repeat the password: ") != password:
        raise CliError("The passwords do not match.")
    return password


def _database(args: argparse.Namespace, *, needs_schema: bool = True) -> Database:
    try:
        db = Database(args.db_url)
    except Exception as exc:
        raise CliError(f"Cannot use the hand-off database: {exc}") from None
    if needs_schema:
        try:
            current, head = db.schema_revision(), db.head_revision()
        except Exception as exc:
            raise CliError(f"Cannot reach the hand-off database {db.shown_url}: {exc}") from None
        if current != head:
            raise CliError(
                "The hand-off database schema is not up to date "
                f"(at {current or 'nothing'}, latest {head}): run `python -m bot.handoff.cli migrate` first."
            )
    return db


def cmd_migrate(args: argparse.Namespace) -> None:
    db = _database(args, needs_schema=False)
    db.migrate()
    print(f"Hand-off schema is at revision {db.schema_revision()} ({db.shown_url}).")


def cmd_create_agent(args: argparse.Namespace) -> None:
    agents = AgentStore(_database(args))
    agent = agents.create_agent(args.username, _read_password(), args.display_name)
    print(f"Created agent {agent.username} ({agent.display_name}), id {agent.id}.")


def cmd_set_password(args: argparse.Namespace) -> None:
    agents = AgentStore(_database(args))
    agents.set_password(args.username, _read_password())
    print(f"Password changed for {args.username.strip().lower()}; their sessions were signed out.")


def cmd_set_active(args: argparse.Namespace, active: bool) -> None:
    agent = AgentStore(_database(args)).set_active(args.username, active)
    print(f"Agent {agent.username} is now {'active' if agent.is_active else 'inactive'}.")


def cmd_list_agents(args: argparse.Namespace) -> None:
    agents = AgentStore(_database(args)).list_agents()
    if not agents:
        print("No agents yet: add one with `python -m bot.handoff.cli create-agent USERNAME`.")
        return
    rows = [("ID", "USERNAME", "DISPLAY NAME", "ACTIVE", "LAST SEEN (UTC)")]
    for a in agents:
        seen = a.last_seen_at.strftime("%Y-%m-%d %H:%M") if a.last_seen_at else "never"
        rows.append((str(a.id), a.username, a.display_name, "yes" if a.is_active else "no", seen))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def cmd_stats(args: argparse.Namespace) -> None:
    print(json.dumps(TicketStore(_database(args)).stats(), indent=2, sort_keys=True))


def cmd_unknown_banks(args: argparse.Namespace) -> None:
    from bot.handoff.unknown_banks import UnknownBanks

    registry = UnknownBanks(_database(args))
    if args.dismiss is not None:
        if not registry.dismiss(args.dismiss):
            raise CliError(f"No such name in the list: {args.dismiss!r}.")
        print(f"Dismissed {args.dismiss.strip()!r}.")
        return
    names = registry.counts(args.limit)
    if args.json:
        print(json.dumps([n.to_dict() for n in names], indent=2, ensure_ascii=False))
        return
    if not names:
        print("No unknown bank names recorded.")
        return
    rows = [("COUNT", "NAME", "FIRST SEEN", "LAST SEEN")]
    rows += [(str(n.count), n.name, n.first_seen.isoformat(), n.last_seen.isoformat()) for n in names]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(
                cell.rjust(width) if i == 0 else cell.ljust(width) for i, (cell, width) in enumerate(zip(row, widths))
            ).rstrip()
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot.handoff.cli",
        description="Administer the hand-off (agents, figures) and the product database's schema.",
    )
    parser.add_argument("--db-url", help="database URL (default: $HANDOFF_DB_URL, else SQLite under var/)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("migrate", help="create or upgrade the schema").set_defaults(func=cmd_migrate)

    p = sub.add_parser("create-agent", help="add an agent (password from a prompt or AGENT_PASSWORD)")
    p.add_argument("username")
    p.add_argument("--display-name", help="name shown to users (default: the username)")
    p.set_defaults(func=cmd_create_agent)

    p = sub.add_parser("set-password", help="change an agent's password")
    p.add_argument("username")
    p.set_defaults(func=cmd_set_password)

    p = sub.add_parser("deactivate", help="stop an agent from signing in (and sign them out)")
    p.add_argument("username")
    p.set_defaults(func=lambda args: cmd_set_active(args, False))

    p = sub.add_parser("activate", help="allow a deactivated agent to sign in again")
    p.add_argument("username")
    p.set_defaults(func=lambda args: cmd_set_active(args, True))

    sub.add_parser("list-agents", help="list the agents").set_defaults(func=cmd_list_agents)
    sub.add_parser("stats", help="queue and outcome figures as JSON").set_defaults(func=cmd_stats)

    p = sub.add_parser("unknown-banks", help="bank names customers gave that the bank directory lacks")
    p.add_argument("--limit", type=int, default=100, help="at most this many names (default 100)")
    p.add_argument("--json", action="store_true", help="as JSON")
    p.add_argument("--dismiss", metavar="NAME", help="forget NAME (after adding it to data/banks.yml)")
    p.set_defaults(func=cmd_unknown_banks)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    try:
        args.func(args)
    except (CliError, HandoffError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 1
    except Exception as exc:  # e.g. the database is unreachable mid-command
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
