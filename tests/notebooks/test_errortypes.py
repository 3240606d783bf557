"""The notebooks' transient/permanent split is the service's."""

from __future__ import annotations

from notebooks.reliability.errortypes import PERMANENT_ERROR_TYPES, TRANSIENT_ERROR_TYPES, classify
from system.bgg.errors import BggError
from system.tasks import thumbnails
from system.tasks.classification import TRANSIENT_ERROR_TYPES as SERVICE_TRANSIENT
from system.tasks.classification import classify as service_classify


def _subclasses(cls: type[BggError]) -> list[type[BggError]]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_subclasses(direct))]


def test_the_same_transient_types_as_the_service() -> None:
    assert set(TRANSIENT_ERROR_TYPES) == set(SERVICE_TRANSIENT)


def test_the_permanent_types_the_service_records() -> None:
    recorded = {c.error_type for c in thumbnails.ThumbnailError.__subclasses__() if not c.transient}
    # bgg_import rows record BGG's answers that retrying cannot change; the job pool records
    # jobs that cannot run at all.
    recorded |= {c.__name__ for c in _subclasses(BggError) if not c.retryable}
    recorded -= {
        "BggUnavailable",
        "ParseProcessLost",
    }  # transient, though BGG's loop does not retry them
    recorded |= {"InvalidJobPayload", "UnknownTaskType", "LeaseExpired"}
    assert recorded == set(PERMANENT_ERROR_TYPES)
    for name in [*recorded, "SomethingNew", None]:
        assert classify(name) == service_classify(name) == "permanent"
