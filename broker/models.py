"""Every table of the broker in one metadata, for Alembic. Import models from their own areas, not from here."""

from sqlmodel import SQLModel

from broker.audit.models import AuditCheckpoint, AuditEntry, AuditNode, AuditState
from broker.consent.models import ConsentRecord, CurrentConsent, Notice
from broker.exchange.models import OutcomeReport
from broker.identity.models import (
    Account,
    Citizen,
    Guardianship,
    LoginThrottle,
    OidcLink,
    OidcLoginState,
    PortalSession,
)
from broker.keymodels import SigningKey
from broker.oauth.models import IssuedToken, OAuthClient, UsedAssertion
from broker.privacy.models import BudgetAccount, PrivacyCounter, Release
from broker.vault.models import IngestBatch

metadata = SQLModel.metadata

__all__ = [
    "Account",
    "AuditCheckpoint",
    "AuditEntry",
    "AuditNode",
    "AuditState",
    "BudgetAccount",
    "Citizen",
    "ConsentRecord",
    "CurrentConsent",
    "Guardianship",
    "IngestBatch",
    "IssuedToken",
    "LoginThrottle",
    "Notice",
    "OAuthClient",
    "OidcLink",
    "OidcLoginState",
    "OutcomeReport",
    "PortalSession",
    "PrivacyCounter",
    "Release",
    "SigningKey",
    "UsedAssertion",
    "metadata",
]
