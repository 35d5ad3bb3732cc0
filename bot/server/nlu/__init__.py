"""Rasa NLU components named in config.yml (entity extractor, sensitive-data guard) and the NLU
evaluation (``make eval``). The spaCy pipeline they run on is built by ``bot.nlu.spacy_pipeline``."""
