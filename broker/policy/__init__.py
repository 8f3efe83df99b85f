"""The city's reviewed policies: schema (pydantic models of policies/*.yaml), loading and checking."""

from broker.policy.loader import PolicyError, load_policy, policy_digest
from broker.policy.schema import Dataset, Field, Policy, Purpose, Service

__all__ = ["Dataset", "Field", "Policy", "PolicyError", "Purpose", "Service", "load_policy", "policy_digest"]
