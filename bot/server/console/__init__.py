"""The agent console: a web page and JSON API for human specialists (served by the Rasa server)."""
