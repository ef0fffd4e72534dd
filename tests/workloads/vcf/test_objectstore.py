"""ObjectStore: the folder store for real, the GCS store through google-cloud-storage."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from workloads.contracts.errors import UserError
from workloads.objectstore import open_store
from workloads.objectstore.folder import FolderStore
from workloads.objectstore.gcs import GcsStore


def test_folder_store_round_trip_move_and_containment(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "bucket"))
    assert isinstance(store, FolderStore)
    store.write_bytes("vcf/a.txt", b"one")
    src = tmp_path / "local.bin"
    src.write_bytes(b"two")
    store.upload(src, "vcf/b.bin")
    assert store.list("vcf/") == ["vcf/a.txt", "vcf/b.bin"]
    store.move("vcf/a.txt", "quarantine/vcf/a.txt")
    assert not store.exists("vcf/a.txt") and store.read_bytes("quarantine/vcf/a.txt") == b"one"
    assert store.download("vcf/b.bin", tmp_path / "copy").read_bytes() == b"two"
    with pytest.raises(UserError, match="escapes"):
        store.read_bytes("../outside")
    with pytest.raises(UserError, match="no object"):
        store.download("vcf/missing", tmp_path / "x")


def test_gcs_store_names_objects_under_its_prefix_and_moves_by_copy_delete() -> None:
    client = storage.Client(project="sovereign-us", credentials=AnonymousCredentials())
    store = GcsStore.from_uri("gs://sovereign-us-raw-input/batch1", client=client)
    assert store.uri("vcf/a.vcf.gz") == "gs://sovereign-us-raw-input/batch1/vcf/a.vcf.gz"
    with mock.patch.object(storage.Bucket, "copy_blob") as copy, \
            mock.patch.object(storage.Blob, "delete") as delete:
        store.move("vcf/a.vcf.gz", "quarantine/vcf/a.vcf.gz")
    blob, bucket, new_name = copy.call_args.args
    assert blob.name == "batch1/vcf/a.vcf.gz" and bucket.name == "sovereign-us-raw-input"
    assert new_name == "batch1/quarantine/vcf/a.vcf.gz"
    delete.assert_called_once()
    listed = [storage.Blob("batch1/vcf/b", None), storage.Blob("batch1/vcf/a", None)]
    with mock.patch.object(storage.Client, "list_blobs", return_value=listed) as list_blobs:
        assert store.list("vcf/") == ["vcf/a", "vcf/b"]
    assert list_blobs.call_args.kwargs["prefix"] == "batch1/vcf/"
    with pytest.raises(UserError, match="no bucket"):
        GcsStore.from_uri("gs://")
