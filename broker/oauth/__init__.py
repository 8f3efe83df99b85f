"""OAuth 2 for city services and data providers (authorization server glue around authlib)."""
