"""HTTP routers, one per audience (DESIGN §3). Routers parse, call one domain service and return a schema."""
