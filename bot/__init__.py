"""Server-side package of the bank-feed assistant: NLU components, channels, handoff, storage."""
