"""Hand-off to human specialists: the durable store (``store``), its schema (``models``, Alembic
``migrations``), agent passwords (``passwords``) and the admin CLI (``python -m bot.handoff.cli``).

``bot.handoff.store`` and friends are plain Python (SQLAlchemy, Alembic): no Rasa imports, so the
action server, the Rasa server and the CLI can all use them. Import submodules explicitly.
"""
