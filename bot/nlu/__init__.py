"""NLU pieces that run inside the Rasa server: the spaCy pipeline builder and our entity extractor."""
