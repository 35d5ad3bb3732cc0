"""Hand-off to human specialists: the tickets (``tickets``: queue, messages, events, outcomes), the
specialists' accounts and console sessions (``agents``), what both hand out (``views``), agent
passwords (``passwords``), the escalation summary (``escalation``), the action server's side
(``desk``), conversation references and seen chat events, unknown bank names, and the admin CLI
(``python -m bot.handoff.cli``). The stores are built on the product database (``bot.db.engine``).

All plain Python (SQLAlchemy, Alembic): no Rasa imports, so the action server, the Rasa server and
the CLI can all use them. Import submodules explicitly.
"""
