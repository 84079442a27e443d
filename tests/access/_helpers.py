"""Helpers shared by the access tests."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

PASSWORD = "correct-horse-battery-7"


def login(client: TestClient, username: str, password: str = PASSWORD, **extra: Any) -> Any:
    return client.post("/auth/login", json={"username": username, "password": password, **extra})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
