"""Pick the blob store the settings ask for."""

from __future__ import annotations

from trialpacs.settings import Settings
from trialpacs.storage.base import BlobStore
from trialpacs.storage.local import LocalStore
from trialpacs.storage.s3 import S3Store


def open_store(settings: Settings) -> BlobStore:
    if settings.storage == "s3":
        store = S3Store(
            bucket=settings.s3_bucket,
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
        )
        store.ensure_bucket()
        return store
    local = LocalStore(settings.resolved_storage_dir())
    local.cleanup_partials()
    return local
