"""The spaCy pipeline the NLU runs on, built from code (``spacy_pipeline``: blank English plus an
EntityRuler fed by the bank directory, error codes, browsers and URLs); no model is downloaded."""
