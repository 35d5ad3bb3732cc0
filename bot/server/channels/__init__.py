"""Input channels of the product (configured in credentials.yml).

Each one is Rasa's own connector with the hand-off router in front of the bot: while a specialist
handles a conversation, the user's messages go to them and the bot stays silent.
"""

from bot import log_masking
from bot.server import rasa_patches as speedups

speedups.apply()
log_masking.install()  # the Rasa server loads these channels at start-up: mask secrets in its logs
