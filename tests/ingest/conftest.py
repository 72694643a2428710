from __future__ import annotations

import pytest

from mmrag.config import IngestSettings


@pytest.fixture
def settings() -> IngestSettings:
    return IngestSettings()

