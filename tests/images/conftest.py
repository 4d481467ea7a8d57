from __future__ import annotations

import pytest

from tests import processes
from tests.images import podman


@pytest.fixture(scope="session")
def images() -> podman.Images:
    """The gateway's image and the engine's (ENGINE), built as `make image` builds them."""
    return podman.build(processes.engine_name())
