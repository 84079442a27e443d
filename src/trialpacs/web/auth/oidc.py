"""oidc sign-in routes."""

from fastapi import APIRouter

router = APIRouter()
