"""The city's reviewed policies: schema (pydantic models of policies/*.yaml), loading and checking."""
