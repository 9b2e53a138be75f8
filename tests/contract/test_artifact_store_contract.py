"""ArtifactStore contract: content addressing, atomic writes, verified reads, safe digests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from conveyor.core.errors import ConfigError, InvalidInputError, NotFoundError, StoreError
from conveyor.store.fs import FsArtifactStore, digest_bytes

HELLO = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"


def _corrupt(store: FsArtifactStore, digest: str, data: bytes) -> None:
    """Overwrite the stored blob behind the store's back."""
    path = store._path(digest)
    store._fs.pipe_file(path, data)


def test_put_returns_the_sha256_digest_and_get_returns_the_bytes(
    artifacts: FsArtifactStore,
) -> None:
    assert artifacts.put_bytes(b"hello") == HELLO
    assert artifacts.get_bytes(HELLO) == b"hello"
    assert artifacts.exists(HELLO)
    assert artifacts.put_bytes(b"hello") == HELLO
    assert artifacts.put_bytes(b"") == digest_bytes(b"")
    assert artifacts.get_bytes(digest_bytes(b"")) == b""


def test_blobs_live_under_their_digest(artifacts: FsArtifactStore) -> None:
    digest = artifacts.put_bytes(b"layout")
    hex_digest = digest.removeprefix("sha256:")
    assert artifacts._path(digest).endswith(f"/sha256/{hex_digest[:2]}/{hex_digest[2:]}")
    assert artifacts._fs.cat_file(artifacts._path(digest)) == b"layout"


def test_put_file_stores_its_content(artifacts: FsArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    payload = bytes(range(256)) * 5000
    source.write_bytes(payload)
    digest = artifacts.put_file(source)
    assert digest == "sha256:" + hashlib.sha256(payload).hexdigest()
    assert artifacts.get_bytes(digest) == payload
    assert artifacts.put_file(source) == digest
    with pytest.raises(NotFoundError, match="no such file"):
        artifacts.put_file(tmp_path / "missing.bin")


def test_no_temporary_files_are_left_behind(artifacts: FsArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "f.bin"
    source.write_bytes(b"file")
    for data in (b"a", b"b", b"a"):
        artifacts.put_bytes(data)
    artifacts.put_file(source)
    files = artifacts._fs.find(artifacts._root)
    assert len(files) == 3
    assert not [f for f in files if ".tmp-" in f or "/tmp/upload-" in f]


def test_missing_blob_is_not_found(artifacts: FsArtifactStore) -> None:
    missing = digest_bytes(b"never stored")
    assert not artifacts.exists(missing)
    with pytest.raises(NotFoundError, match=missing):
        artifacts.get_bytes(missing)
    with pytest.raises(NotFoundError, match=missing):
        artifacts.local_path(missing)
    artifacts.delete(missing)


def test_delete_removes_the_blob(artifacts: FsArtifactStore) -> None:
    digest = artifacts.put_bytes(b"bye")
    artifacts.delete(digest)
    assert not artifacts.exists(digest)
    with pytest.raises(NotFoundError):
        artifacts.get_bytes(digest)


def test_corrupt_blob_is_a_store_error_naming_the_digest(artifacts: FsArtifactStore) -> None:
    digest = artifacts.put_bytes(b"original")
    _corrupt(artifacts, digest, b"tampered")
    with pytest.raises(StoreError, match=f"{digest} .* is corrupt"):
        artifacts.get_bytes(digest)
    with pytest.raises(StoreError, match="corrupt"):
        artifacts.local_path(digest)


def test_local_path_is_a_verified_file(artifacts: FsArtifactStore) -> None:
    digest = artifacts.put_bytes(b"parquet bytes")
    path = artifacts.local_path(digest)
    assert path.is_file() and path.read_bytes() == b"parquet bytes"
    assert artifacts.local_path(digest) == path


def test_remote_cache_copy_is_verified_and_refetched(tmp_path: Path) -> None:
    store = FsArtifactStore("memory://conveyor-cache-test", cache_dir=tmp_path / "cache")
    digest = store.put_bytes(b"remote")
    path = store.local_path(digest)
    assert path.is_relative_to(tmp_path / "cache")
    path.write_bytes(b"bit rot")
    assert store.local_path(digest).read_bytes() == b"remote"
    store._fs.rm("conveyor-cache-test", recursive=True)


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:../../../../etc/passwd",
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "md5:" + "a" * 32,
        "a" * 64,
        "sha256:" + "a" * 62 + "/x",
        "",
    ],
)
def test_malformed_digest_is_rejected(artifacts: FsArtifactStore, digest: str) -> None:
    for call in (artifacts.get_bytes, artifacts.exists, artifacts.delete, artifacts.local_path):
        with pytest.raises(InvalidInputError, match="64 lowercase hex digits"):
            call(digest)


def test_unknown_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="nosuchscheme://bucket"):
        FsArtifactStore("nosuchscheme://bucket/prefix")
