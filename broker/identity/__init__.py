"""People: citizens (data subjects) and staff accounts, their identifiers and roles."""
