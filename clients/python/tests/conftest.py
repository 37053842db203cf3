import os

import pytest


@pytest.fixture(scope="session")
def address() -> str:
    """The gateway under test: `npm test` starts a cluster and sets SWITCHYARD_ADDRESS."""
    a = os.environ.get("SWITCHYARD_ADDRESS")
    if not a:
        pytest.skip("SWITCHYARD_ADDRESS is not set (start `npm start` and export SWITCHYARD_ADDRESS=127.0.0.1:50051)")
    return a
