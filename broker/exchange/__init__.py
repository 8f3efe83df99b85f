"""What citizens get back and what the city gains: returns, contribution ledger, outcome reports, benefits and
open data (DESIGN §4, issue 6). Framework-free: nothing here imports FastAPI or builds a response."""
