"""Every table of the broker in one metadata, for Alembic. Import models from their own areas, not from here."""

from sqlmodel import SQLModel

from broker.consent.models import ConsentRecord, Notice
from broker.identity.models import Account, Citizen
from broker.keymodels import SigningKey
from broker.oauth.models import OAuthClient

metadata = SQLModel.metadata

__all__ = ["Account", "Citizen", "ConsentRecord", "Notice", "OAuthClient", "SigningKey", "metadata"]
