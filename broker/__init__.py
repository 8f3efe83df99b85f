"""Consent Broker: a privacy-preserving data-sharing consent broker for cities."""

__version__ = "0.1.0"
