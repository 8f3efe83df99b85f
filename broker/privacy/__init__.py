"""Differentially private statistics: budget accounts, cohorts, pushed-down aggregates, OpenDP noise, releases.

The privacy unit everywhere is one citizen (all their records): neighbouring datasets differ by one citizen's
data (DESIGN §5). :mod:`broker.privacy.queries` runs one query end to end; the other modules each hold one step.
"""
