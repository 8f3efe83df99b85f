"""The demo city: a synthetic Lyon with citizens, consents, vault records, logins and OAuth clients.

``consent-broker demo`` calls :func:`seed_demo`; ``bench/seed.py`` measures it.
"""

from broker.demo.credentials import DemoClient, DemoCredentials, DemoLogin
from broker.demo.seed import DemoIncomplete, seed_demo

__all__ = ["DemoClient", "DemoCredentials", "DemoIncomplete", "DemoLogin", "seed_demo"]
