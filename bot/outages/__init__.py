"""Outage radar: turns many users' reports and the bank-site probes into shared knowledge."""
