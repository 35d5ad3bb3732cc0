"""Input channels of the product (configured in credentials.yml).

Each one is Rasa's own connector with the hand-off router in front of the bot: while a specialist
handles a conversation, the user's messages go to them and the bot stays silent.

Importing them changes nothing else: the server's launcher (bot/server/serve.py) masks the logs and
applies the Rasa patches before Rasa loads them.
"""
