"""Custom actions of the bank-feed assistant, run by the action server
(``python -m bot.server.action_server --actions actions``).

Importing the package changes nothing else: the launcher (bot/server/action_server.py) masks the
server's log records (``bot.log_masking``) before it loads the actions, so a secret a user pasted
never reaches the action server's logs.
"""
