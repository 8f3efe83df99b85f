"""The citizens' portal and the auditors' view (issue 7): server-rendered Jinja2 pages over the domain services.

Every action is a plain form that posts and redirects (303), so the portal works with JavaScript off; htmx
only boosts those same forms. Nothing here touches SQL: pages call the services the JSON API calls.
"""

from consent_ui.routes import build_router

__all__ = ["build_router"]
