"""Where inputs live: local paths, or URIs on object storage and other filesystems.

A path with a scheme (``s3://bucket/prefix/``, ``gs://...``, ``hdfs://...``, ``file:///data``) is
resolved to a :mod:`pyarrow.fs` filesystem; schemes pyarrow does not know (``az://``, ``hf://``,
...) go through fsspec when it is installed. S3 takes its endpoint, region and credentials from the
standard environment variables (``AWS_ENDPOINT_URL`` or ``AWS_ENDPOINT_URL_S3``,
``AWS_DEFAULT_REGION`` or ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``, ``AWS_PROFILE``), so workers on a cluster need only the same environment.
"""

from __future__ import annotations

import functools
import os
import re
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from poisonscan.errors import InputError

_SCHEME_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
REMOTE_BUFFER_BYTES = 8 * 2**20  # remote read-ahead: one request per 8 MiB, not per read call


def scheme(path: str) -> str | None:
    """The URI scheme of ``path`` (``"s3"``), or None for a plain local path."""
    match = _SCHEME_RE.match(path)
    return match.group(1).lower() if match else None


def is_remote(path: str) -> bool:
    """Whether ``path`` is a URI of a non-local filesystem."""
    return scheme(path) not in (None, "file")


def local_path(path: str) -> str:
    """A plain path for a local path or a ``file://`` URI."""
    if scheme(path) == "file":
        return unquote(urlsplit(path).path)  # RFC 8089: "my%20data" is "my data"
    return path


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem of ``uri`` and the path within it (``bucket/key`` for object stores).

    Raises:
        InputError: the scheme is not supported, or its filesystem cannot be set up.
    """
    kind = scheme(uri)
    if kind in (None, "file"):
        return pafs.LocalFileSystem(), local_path(uri)
    if kind in ("s3", "s3a") and "?" not in uri:
        return _s3_from_environment(*_s3_settings()), uri.split("://", 1)[1]
    try:
        return pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
        fs = _fsspec(kind, uri)
        if fs is None:
            raise InputError(uri, f"unsupported filesystem {kind!r} ({str(exc).strip()}); "
                             "use s3://, gs://, hdfs:// or file://, or install fsspec and the "
                             f"package for {kind}://", reason="unreadable") from None
        return fs, uri.split("://", 1)[1]
    except OSError as exc:
        raise InputError(uri, f"cannot set up the filesystem: {str(exc).strip()}",
                         reason="unreadable") from None


def to_uri(uri: str, inner: str, fs_path: str) -> str:
    """The URI of ``fs_path``, a path on the filesystem that ``uri`` resolved to (as ``inner``)."""
    if scheme(uri) in (None, "file"):
        return fs_path
    head, tail = uri.rstrip("/"), inner.rstrip("/")
    prefix = head[: len(head) - len(tail)] if tail and head.endswith(tail) else f"{scheme(uri)}://"
    return prefix + fs_path


def open_input_stream(path: str) -> pa.NativeFile:
    """A sequential byte stream of a local file or a URI (buffered for remote files)."""
    if not is_remote(path):
        return pa.OSFile(local_path(path), "rb")
    fs, inner = resolve(path)
    # compression=None: the bytes as stored; ByteStream decompresses (pyarrow would guess from
    # the extension and decompress .gz twice).
    return fs.open_input_stream(inner, compression=None, buffer_size=REMOTE_BUFFER_BYTES)


def _s3_settings() -> tuple[str | None, str | None]:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return endpoint or None, region or None


@functools.lru_cache(maxsize=8)
def _s3_from_environment(endpoint: str | None, region: str | None) -> pafs.S3FileSystem:
    """One S3 filesystem per (endpoint, region) and process; credentials come from the SDK chain."""
    options: dict[str, object] = {}
    if region:
        options["region"] = region
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        options["scheme"] = parts.scheme or "https"
        options["endpoint_override"] = parts.netloc + parts.path.rstrip("/")
    return pafs.S3FileSystem(**options)  # type: ignore[arg-type]


def _fsspec(kind: str | None, uri: str) -> pafs.FileSystem | None:
    try:
        import fsspec
    except ImportError:
        return None
    try:
        fs = fsspec.filesystem(kind)
    except (ImportError, ValueError):
        return None
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs))
