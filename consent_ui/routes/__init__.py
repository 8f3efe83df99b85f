"""The portal's routers, one per audience."""

from __future__ import annotations

from fastapi import APIRouter

from consent_ui.routes import auditor, citizen, public, wards


def build_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    router.include_router(public.router)
    router.include_router(citizen.router)
    router.include_router(wards.router)
    router.include_router(auditor.router)
    return router
