"""Consent records (append-only), their lifecycle rules and signed receipts."""
