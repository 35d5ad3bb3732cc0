"""The product database: its engine, transactions and migrations (``engine``), its schema
(``models``) and the Alembic revisions (``migrations/``). Every store of the product is built on one
``bot.db.engine.Database``."""
