"""Custom actions of the bank-feed assistant (``rasa run actions --actions actions``).

Importing the package is the action server's start-up: from here on its log records are masked
(``bot.log_masking``), so a secret a user pasted never reaches the action server's logs.
"""
from bot import log_masking

log_masking.install()
