"""The ``consent-broker`` command groups, one module each; :mod:`broker.cli` assembles them."""
