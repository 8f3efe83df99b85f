"""The access log: every decision and every change, allow and deny alike, written with the action it records."""

from broker.audit.log import AuditEvent, record

__all__ = ["AuditEvent", "record"]
