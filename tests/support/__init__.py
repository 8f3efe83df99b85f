"""Test support: a throwaway PostgreSQL cluster and database factories (no mocks of real parts)."""
