"""The bank-feed assistant: the product's own logic (see docs/architecture.md).

Everything here but ``bot.server`` is plain Python and knows nothing of Rasa; ``bot.server`` is what runs
inside the Rasa server. ``tests/test_architecture.py`` holds that rule.
"""
