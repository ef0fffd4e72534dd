"""ObjectStore: the folder store for real, the GCS store through google-cloud-storage."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from workloads.contracts.errors import UserError
from workloads.objectstore import open_store
from workloads.objectstore.folder import FolderStore
from workloads.objectstore.gcs import GcsStore


def test_folder_store_round_trip_copy_and_containment(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "bucket"), os.urandom(32))
    assert isinstance(store, FolderStore)
    store.write_bytes("vcf/a.txt", b"one")
    src = tmp_path / "local.bin"
    src.write_bytes(b"two")
    store.upload(src, "vcf/b.bin")
    assert store.list("vcf/") == ["vcf/a.txt", "vcf/b.bin"]
    store.copy("vcf/a.txt", "quarantine/vcf/a.txt")
    assert store.read_bytes("vcf/a.txt") == store.read_bytes("quarantine/vcf/a.txt") == b"one"
    assert store.download("vcf/b.bin", tmp_path / "copy").read_bytes() == b"two"
    with pytest.raises(UserError, match="escapes"):
        store.read_bytes("../outside")
    with pytest.raises(UserError, match="no object"):
        store.download("vcf/missing", tmp_path / "x")


def test_gcs_store_names_objects_under_its_prefix_and_copies_without_deleting() -> None:
    client = storage.Client(project="sovereign-us", credentials=AnonymousCredentials())
    store = GcsStore.from_uri("gs://sovereign-us-raw-input/batch1", client=client)
    assert store.uri("vcf/a.vcf.gz") == "gs://sovereign-us-raw-input/batch1/vcf/a.vcf.gz"
    with mock.patch.object(storage.Bucket, "copy_blob") as copy, \
            mock.patch.object(storage.Blob, "delete") as delete:
        store.copy("vcf/a.vcf.gz", "quarantine/vcf/a.vcf.gz")
    blob, bucket, new_name = copy.call_args.args
    assert blob.name == "batch1/vcf/a.vcf.gz" and bucket.name == "sovereign-us-raw-input"
    assert new_name == "batch1/quarantine/vcf/a.vcf.gz"
    delete.assert_not_called()
    listed = [storage.Blob("batch1/vcf/b", None), storage.Blob("batch1/vcf/a", None)]
    with mock.patch.object(storage.Client, "list_blobs", return_value=listed) as list_blobs:
        assert store.list("vcf/") == ["vcf/a", "vcf/b"]
    assert list_blobs.call_args.kwargs["prefix"] == "batch1/vcf/"
    with pytest.raises(UserError, match="no bucket"):
        GcsStore.from_uri("gs://")


def test_folder_objects_are_sealed_and_tampering_is_refused(tmp_path: Path) -> None:
    key = os.urandom(32)
    store = FolderStore(tmp_path / "bucket", key)
    secret = b"US-0001\t0/1\t" * 200_000  # > 2 chunks
    store.write_bytes("vcf/a", secret)
    on_disk = (tmp_path / "bucket" / "vcf" / "a").read_bytes()
    # Whole plaintext records only: a 3-byte string like "0/1" turns up by chance in 2.4 MB
    # of ciphertext about one time in seven.
    assert b"US-0001\t0/1\t" not in on_disk and b"US-0001" not in on_disk
    assert store.read_bytes("vcf/a") == secret
    with store.open_read("vcf/a") as f:  # random access (Parquet readers seek)
        f.seek(1_500_000)
        assert f.read(10) == secret[1_500_000:1_500_010]
    attacks = {
        "flipped bit": on_disk[:100] + bytes([on_disk[100] ^ 1]) + on_disk[101:],
        "truncated at a chunk boundary": on_disk[:20 + (1 << 20) + 16],
        "last chunk dropped": on_disk[:-100],
    }
    for name, data in attacks.items():
        (tmp_path / "bucket" / "vcf" / "a").write_bytes(data)
        with pytest.raises(UserError, match="cannot decrypt"):
            store.read_bytes("vcf/a")
        assert name
    store.write_bytes("vcf/b", b"x")
    os.replace(tmp_path / "bucket" / "vcf" / "b", tmp_path / "bucket" / "vcf" / "c")
    with pytest.raises(UserError, match="cannot decrypt"):  # the name is authenticated
        store.read_bytes("vcf/c")
    store.write_bytes("vcf/d", b"x")
    with pytest.raises(UserError, match="cannot decrypt"):  # another node's key
        FolderStore(tmp_path / "bucket", os.urandom(32)).read_bytes("vcf/d")


def test_a_failed_write_leaves_no_object_and_dead_temporaries_are_cleaned(
    tmp_path: Path,
) -> None:
    store = FolderStore(tmp_path / "bucket", os.urandom(32))
    with pytest.raises(RuntimeError), store.open_write("a/x") as out:
        out.write(b"half")
        raise RuntimeError("killed")
    assert not store.exists("a/x") and not list((tmp_path / "bucket" / "a").iterdir())
    dead = tmp_path / "bucket" / "a" / ".x.tmp-999999999-abc"  # no such process
    alive = tmp_path / "bucket" / "a" / f".y.tmp-{os.getpid()}-abc"
    dead.write_bytes(b"")
    alive.write_bytes(b"")
    assert store.clean_temporaries() == [dead]
    assert alive.exists()
