"""Downloads that are complete, verified or absent.

A file is streamed into a temporary sibling and hashed on the way; only when its
SHA-256 matches the pinned value is it renamed to ``dest``. A wrong hash or a broken
connection therefore never leaves a file that a later step would take as finished.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import BinaryIO

from tqdm.auto import tqdm

from topkshape.atomic import atomic_file
from topkshape.errors import ChecksumError, ConfigError, InputDataError

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _normalise_hash(expected: str) -> str:
    """Accept upper case and stray whitespace, but reject a value that cannot be a SHA-256."""
    value = expected.strip().lower()
    if not _HEX64.fullmatch(value):
        raise ConfigError(f"sha256 must be 64 hexadecimal characters, got {expected!r}")
    return value


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in chunks so large archives do not fill memory."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                digest.update(chunk)
    except OSError as e:
        raise InputDataError(f"cannot read {path}: {e.strerror or e}") from None
    return digest.hexdigest()


def verify_sha256(path: str | os.PathLike, expected: str) -> None:
    """Raise :class:`ChecksumError` naming ``path`` unless its SHA-256 is ``expected``."""
    want = _normalise_hash(expected)
    actual = sha256_of(path)
    if actual != want:
        raise ChecksumError(f"{path}: SHA-256 is {actual}, expected {want}")


def as_url(location: str | os.PathLike) -> str:
    """A URL for ``location``: kept as it is when it has a scheme, else a local folder as ``file://``.

    Lets every base URL in the config also name a mirror on disk.
    """
    text = os.fspath(location)
    if urllib.parse.urlsplit(text).scheme in {"http", "https", "file", "ftp"}:
        return text
    return Path(text).expanduser().resolve().as_uri()


def _open(url: str, timeout: float) -> http.client.HTTPResponse | BinaryIO:
    try:
        return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - user-given URL by design
    except urllib.error.HTTPError as e:
        raise InputDataError(f"cannot download {url}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise InputDataError(f"cannot download {url}: {e.reason}") from None
    except TimeoutError:
        raise InputDataError(f"cannot download {url}: no answer within {timeout} s") from None
    except (OSError, ValueError, http.client.HTTPException) as e:
        raise InputDataError(f"cannot download {url}: {e}") from None


def _read(response: BinaryIO, url: str, timeout: float) -> bytes:
    try:
        return response.read(_CHUNK)
    except TimeoutError:
        raise InputDataError(f"cannot download {url}: stalled for more than {timeout} s") from None
    except (OSError, http.client.HTTPException) as e:
        # IncompleteRead (an HTTPException, not an OSError) means the server closed early.
        raise InputDataError(f"cannot download {url}: connection broke ({e!r})") from None


def download_file(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None,
    *,
    timeout: float = 60,
    progress: bool = True,
    require_pinned: bool = False,
    pin_key: str | None = None,
    sha256_prefix: str | None = None,
) -> Path:
    """Download ``url`` to ``dest`` and check its SHA-256; return ``dest``.

    ``sha256=None`` still downloads but logs the actual hash as a warning so it can be
    pinned: an unpinned download cannot be reproduced. With ``require_pinned``
    (config ``downloads.require_pinned``) it is refused before any byte is fetched;
    ``pin_key`` names the config key that would pin it. On a mismatch nothing is
    written to ``dest`` (an older file already there is left as it was).

    ``sha256_prefix``: with no full ``sha256``, the leading hex digits the file's SHA-256 must
    have (torch.hub's pin in a weights file's name, ``vgg16-397923af.pth``); it counts as pinned.
    """
    final = Path(dest)
    if sha256 is None and sha256_prefix is not None and not re.fullmatch(r"[0-9a-f]{6,64}", sha256_prefix):
        raise ConfigError(f"sha256_prefix must be 6 to 64 lower-case hexadecimal characters, got {sha256_prefix!r}")
    if sha256 is None and sha256_prefix is None and require_pinned:
        where = f"set {pin_key} to its SHA-256" if pin_key else "pin its SHA-256"
        raise ConfigError(
            f"refusing to download {url} without a pinned SHA-256 (downloads.require_pinned is true): "
            f"{where}, or set downloads.require_pinned: false"
        )
    expected = None if sha256 is None else _normalise_hash(sha256)
    digest = hashlib.sha256()
    with atomic_file(final) as tmp, open(tmp, "wb") as out:
        response = _open(url, timeout)
        with response:
            length = response.headers.get("Content-Length") if hasattr(response, "headers") else None
            total = int(length) if length and length.isdigit() else None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=final.name, disable=None if progress else True, leave=False
            ) as bar:
                while chunk := _read(response, url, timeout):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        actual = digest.hexdigest()
        if expected is not None and actual != expected:
            raise ChecksumError(f"{url} -> {final}: SHA-256 is {actual}, expected {expected}")
        if expected is None and sha256_prefix is not None and not actual.startswith(sha256_prefix):
            raise ChecksumError(f"{url} -> {final}: SHA-256 is {actual}, which does not start with {sha256_prefix}, the prefix its name pins")
    if expected is None and sha256_prefix is None:
        logger.warning("unpinned download: no SHA-256 pinned for %s; downloaded %s has sha256 %s", url, final, actual)
    return final


def unpack_archive(archive: str | os.PathLike, dest: str | os.PathLike, url: str) -> None:
    """Unpack a downloaded tar or zip archive into ``dest`` (tar members may not leave it: the ``data`` filter)."""
    import tarfile
    import zipfile

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            tf.extractall(dest, filter="data")
    else:
        raise InputDataError(f"{url}: neither a tar nor a zip archive")
