"""Blob stores: where instance bytes live. The index says what they are."""

from trialpacs.storage.base import BlobStore, instance_key
from trialpacs.storage.factory import open_store

__all__ = ["BlobStore", "instance_key", "open_store"]
