"""Content-addressed artifact store over fsspec: a local folder, ``file://`` or any fsspec URL.

A blob with digest ``sha256:abcdef...`` lives at ``<root>/sha256/ab/cdef...``. Writes go to a
temporary name beside the target and are renamed into place, so a reader never sees half a
blob; every read checks the content against its digest.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from conveyor.core.clock import new_id
from conveyor.core.errors import ConfigError, InvalidInputError, NotFoundError, StoreError
from conveyor.core.names import check_artifact_name as check_artifact_name

DIGEST_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")
_CHUNK = 1 << 20


def digest_bytes(data: bytes) -> str:
    """Return the digest ``sha256:<hex>`` of ``data``."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def digest_file(path: Path) -> str:
    """Return the digest ``sha256:<hex>`` of the file at ``path``, read in chunks."""
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            sha.update(chunk)
    return f"sha256:{sha.hexdigest()}"


def _modified_at(info: Mapping[str, object]) -> datetime | None:
    """The modification time in an fsspec ``info`` mapping, as aware UTC, if it has one."""
    for key in ("mtime", "LastModified", "last_modified", "created"):
        value = info.get(key)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, int | float):
            return datetime.fromtimestamp(float(value), tz=UTC)
    return None


def check_digest(digest: str) -> str:
    """Return the hex part of ``digest`` or raise InvalidInputError if it is malformed."""
    if not isinstance(digest, str) or DIGEST_PATTERN.fullmatch(digest) is None:
        raise InvalidInputError(
            f"An artifact digest must be 'sha256:' followed by 64 lowercase hex digits. "
            f"Got {digest!r} instead."
        )
    return digest.removeprefix("sha256:")


class FsArtifactStore:
    """:class:`~conveyor.store.base.ArtifactStore` on a local folder or any fsspec filesystem.

    Parameters
    ----------
    root_url : str
        A local path, a ``file://`` URL, or an fsspec URL such as ``s3://bucket/prefix``
        (its fsspec backend must be installed, e.g. ``pip install conveyor-ml[s3]``).
    cache_dir : Path, optional
        Where :meth:`local_path` keeps verified copies of remote blobs. Defaults to a folder
        in the system's temporary directory named after ``root_url``.

    Raises
    ------
    ConfigError
        If no fsspec backend handles ``root_url``'s scheme.

    Examples
    --------
    >>> import tempfile
    >>> store = FsArtifactStore(tempfile.mkdtemp())
    >>> digest = store.put_bytes(b"hello")
    >>> digest
    'sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824'
    >>> store.get_bytes(digest)
    b'hello'
    """

    def __init__(self, root_url: str, *, cache_dir: Path | None = None) -> None:
        self.root_url = root_url
        try:
            fs, root = fsspec.core.url_to_fs(root_url)
        except (ImportError, ValueError) as exc:
            raise ConfigError(
                f"The artifact store URL {root_url!r} needs an fsspec backend that is not "
                f"available: {exc}"
            ) from exc
        self._fs: fsspec.AbstractFileSystem = fs
        self._root = str(root).rstrip("/") or "/"
        self._local = isinstance(fs, LocalFileSystem)
        if cache_dir is None:
            tag = hashlib.sha256(root_url.encode()).hexdigest()[:16]
            cache_dir = Path(tempfile.gettempdir()) / "conveyor-artifact-cache" / tag
        self._cache_dir = cache_dir

    def __repr__(self) -> str:
        return f"FsArtifactStore({self.root_url!r})"

    def put_bytes(self, data: bytes) -> str:
        """Store ``data`` atomically and return its digest; storing it again changes nothing."""
        digest = digest_bytes(data)
        target = self._path(digest)
        with self._backend_errors(f"writing blob {digest}"):
            if self._fs.exists(target):
                return digest
            temp = self._temp_name(target)
            if self._local:
                self._write_local(Path(temp), Path(target), data)
            else:
                self._fs.pipe_file(temp, data)
                self._fs.mv(temp, target)
        return digest

    def put_file(self, path: Path) -> str:
        """Store the local file at ``path`` atomically and return its digest; idempotent."""
        path = Path(path)
        if not path.is_file():
            raise NotFoundError(f"Cannot store {str(path)!r} as an artifact: no such file.")
        with self._backend_errors(f"storing {str(path)!r}"):
            if self._local:
                return self._put_local_file(path)
            digest = digest_file(path)
            target = self._path(digest)
            if not self._fs.exists(target):
                temp = self._temp_name(target)
                self._fs.put_file(str(path), temp)
                self._fs.mv(temp, target)
            return digest

    def get_bytes(self, digest: str) -> bytes:
        """Return the blob's content, verified against ``digest``.

        Raises
        ------
        InvalidInputError
            If ``digest`` is malformed.
        NotFoundError
            If no blob has this digest.
        StoreError
            If the stored content does not match its digest (corruption).
        """
        target = self._path(digest)
        if self._local:
            self._check_inside(target, digest)
        try:
            with self._backend_errors(f"reading blob {digest}"):
                data: bytes = self._fs.cat_file(target)
        except FileNotFoundError as exc:
            raise NotFoundError(f"Artifact {digest} does not exist in {self.root_url!r}.") from exc
        if digest_bytes(data) != digest:
            raise StoreError(
                f"Artifact {digest} in {self.root_url!r} is corrupt: its content hashes to "
                f"{digest_bytes(data)}."
            )
        return data

    def local_path(self, digest: str) -> Path:
        """Return a verified local file with the blob's content.

        For a local store this is the stored file itself (do not modify it); for a remote
        store a copy in the cache folder, downloaded and verified on first use.
        """
        target = self._path(digest)
        if self._local:
            path = Path(target)
            if not path.is_file():
                raise NotFoundError(f"Artifact {digest} does not exist in {self.root_url!r}.")
            self._check_inside(target, digest)
            self._verify(path, digest)
            return path
        hex_digest = check_digest(digest)
        cached = self._cache_dir / "sha256" / hex_digest[:2] / hex_digest[2:]
        if cached.is_file() and digest_file(cached) == digest:
            return cached
        data = self.get_bytes(digest)
        self._write_local(Path(self._temp_name(str(cached))), cached, data)
        return cached

    def exists(self, digest: str) -> bool:
        """True if a blob with this digest is stored (its content is not checked)."""
        target = self._path(digest)
        with self._backend_errors(f"looking up blob {digest}"):
            return bool(self._fs.exists(target))

    def delete(self, digest: str) -> None:
        """Remove the blob if present."""
        target = self._path(digest)
        with self._backend_errors(f"deleting blob {digest}"):
            try:
                self._fs.rm_file(target)
            except FileNotFoundError:
                return

    def list_blobs(self) -> Iterator[tuple[str, int, datetime | None]]:
        """Every stored blob as ``(digest, size in bytes, last modified or None)``.

        Files that are not blobs (temporary names of writes in progress) are skipped.
        """
        base = f"{self._root}/sha256"
        with self._backend_errors("listing blobs"):
            if not self._fs.exists(base):
                return
            found = self._fs.find(base, detail=True)
        for path, info in found.items():
            parts = str(path).rstrip("/").split("/")
            digest = f"sha256:{''.join(parts[-2:])}"
            if DIGEST_PATTERN.fullmatch(digest) is None:
                continue
            yield digest, int(info.get("size") or 0), _modified_at(info)

    def _put_local_file(self, path: Path) -> str:
        # Hash the bytes actually copied, so a source changing underneath cannot mislabel them.
        staging = Path(self._root) / "tmp"
        staging.mkdir(parents=True, exist_ok=True)
        temp = staging / f"upload-{new_id()}"
        sha = hashlib.sha256()
        try:
            with open(path, "rb") as source, open(temp, "wb") as copy:
                for chunk in iter(lambda: source.read(_CHUNK), b""):
                    sha.update(chunk)
                    copy.write(chunk)
                copy.flush()
                os.fsync(copy.fileno())
            digest = f"sha256:{sha.hexdigest()}"
            target = Path(self._path(digest))
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(temp, target)
            return digest
        finally:
            temp.unlink(missing_ok=True)

    def _path(self, digest: str) -> str:
        hex_digest = check_digest(digest)
        return f"{self._root}/sha256/{hex_digest[:2]}/{hex_digest[2:]}"

    def _check_inside(self, target: str, digest: str) -> None:
        """Refuse a blob whose real path (symlinks followed) is outside the store root."""
        real = Path(target).resolve()
        if not real.is_relative_to(Path(self._root).resolve()):
            raise StoreError(
                f"Artifact {digest} in {self.root_url!r} resolves to {str(real)!r}, outside the "
                "store root; a symlink in the store points out of it."
            )

    @staticmethod
    def _temp_name(target: str) -> str:
        return f"{target}.tmp-{new_id()}"

    def _verify(self, path: Path, digest: str) -> None:
        actual = digest_file(path)
        if actual != digest:
            raise StoreError(
                f"Artifact {digest} in {self.root_url!r} is corrupt: its content hashes to "
                f"{actual}."
            )

    @staticmethod
    def _write_local(temp: Path, target: Path, data: bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(temp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)

    @contextmanager
    def _backend_errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except (FileNotFoundError, NotFoundError, StoreError, InvalidInputError):
            raise
        except OSError as exc:
            raise StoreError(f"Artifact store {self.root_url!r} failed {action}: {exc}") from exc
