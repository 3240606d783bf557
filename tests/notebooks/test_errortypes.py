"""The notebooks' transient/permanent split is the service's."""

from __future__ import annotations

from notebooks.reliability.errortypes import PERMANENT_ERROR_TYPES, TRANSIENT_ERROR_TYPES, classify
from system.tasks import thumbnails
from system.tasks.classification import TRANSIENT_ERROR_TYPES as SERVICE_TRANSIENT
from system.tasks.classification import classify as service_classify


def test_the_same_transient_types_as_the_service() -> None:
    assert set(TRANSIENT_ERROR_TYPES) == set(SERVICE_TRANSIENT)


def test_the_permanent_types_the_service_records() -> None:
    recorded = {c.error_type for c in thumbnails.ThumbnailError.__subclasses__() if not c.transient}
    assert recorded == set(PERMANENT_ERROR_TYPES)
    for name in [*recorded, "SomethingNew", None]:
        assert classify(name) == service_classify(name) == "permanent"
