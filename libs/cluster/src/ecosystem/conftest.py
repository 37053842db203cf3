import os

import pytest


def _env(name: str) -> str:
    v = os.environ.get(name)
    if not v:
        pytest.skip(f"{name} is not set: ecosystem.test.ts sets it when it starts a cluster")
    return v


@pytest.fixture(scope="session")
def grpc_address() -> str:
    return _env("SWITCHYARD_ADDRESS")


@pytest.fixture(scope="session")
def http_address() -> str:
    return _env("SWITCHYARD_HTTP_ADDRESS")


@pytest.fixture(scope="session")
def auth_http_address() -> str:
    """A gateway with API token SWITCHYARD_TEST_TOKEN (no scheduler behind it)."""
    return _env("SWITCHYARD_AUTH_HTTP_ADDRESS")
