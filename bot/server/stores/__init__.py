"""Persistence: the conversation tracker store (and, later, the handoff store)."""
