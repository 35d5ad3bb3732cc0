"""The troubleshooting conversation, as plain Python: what a message means for the problem
(``diagnosis``), the fixes in order (``steps``), the credential check that never takes a password
(``credential_check``), browsers (``browsers``), the bank question (``bank_question``) and one turn of
the dialogue, state in and replies out (``conversation``). ``actions/actions.py`` adapts it to Rasa."""
