"""The access log: every decision and every change, allow and deny alike, written with the action it records.

A tamper-evident log in the manner of Certificate Transparency (RFC 9162): ``log`` appends entries (gap-free
sequence numbers, canonical JSON), ``integrator`` folds them into the Merkle tree (``rfc9162``, stored by
``tree``) and signs ``checkpoints``; ``service`` serves proofs and entries, ``accesses`` a citizen's releases;
``verify`` and ``sources`` check it all, against the database or offline. What is logged: ``actions``;
refusals, which have no action's transaction to join: ``refusals``.
"""

from broker.audit.log import AuditEvent, record

__all__ = ["AuditEvent", "record"]
