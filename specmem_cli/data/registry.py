"""Known data sets, where they live on disk, and verified downloads (through pooch).

A data set is a URL plus a content hash. Files are only ever placed after their hash checks out,
so a file found on disk under a known name is trusted and no network work is done for it.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pooch
import requests

from specmem_cli.data.synthetic import SYNTHETIC_NAME
from specmem_cli.errors import DataError

DATA_DIR_ENV = "SPECMEM_DATA_DIR"
_ETT_BASE = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class DatasetSpec:
    """Where a data set comes from and how to recognise the right bytes.

    ``sha256`` is preferred; ``git_blob_sha1`` (SHA-1 of ``"blob <size>\\0" + bytes``, the id git
    shows for a file) is accepted for files whose publisher only exposes that.
    """

    name: str
    url: str
    sha256: str | None = None
    git_blob_sha1: str | None = None
    size: int | None = None

    @property
    def filename(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    def expected_hash(self) -> tuple[str, str]:
        return ("sha256", self.sha256) if self.sha256 else ("git-blob-sha1", self.git_blob_sha1 or "")


KNOWN_DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "ETTh1",
            _ETT_BASE + "ETTh1.csv",
            sha256="f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066",
            size=2_589_657,
        ),
        DatasetSpec(
            "ETTh2",
            _ETT_BASE + "ETTh2.csv",
            sha256="a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b",
            size=2_417_960,
        ),
        DatasetSpec("ETTm1", _ETT_BASE + "ETTm1.csv", git_blob_sha1="62c9f979e2dc5b05d9cc5b38891e60e6baf77417"),
        DatasetSpec("ETTm2", _ETT_BASE + "ETTm2.csv", git_blob_sha1="f9d46027c987d442d2d8f81308d1d8c4d1d35db8"),
    )
}


def data_dir() -> Path:
    """``$SPECMEM_DATA_DIR`` if set, else the per-user cache directory."""
    configured = os.environ.get(DATA_DIR_ENV)
    return Path(configured) if configured else Path(pooch.os_cache("specmem"))


def registry(extra: dict[str, Any] | None = None) -> dict[str, DatasetSpec]:
    """The known data sets plus user entries (``{name: {url, sha256}}`` from a config's ``datasets``)."""
    merged = dict(KNOWN_DATASETS)
    for name, entry in (extra or {}).items():
        if not isinstance(entry, dict) or "url" not in entry:
            raise DataError(f"dataset '{name}' in the config needs a 'url' and a 'sha256'")
        unknown = set(entry) - {"url", "sha256", "git_blob_sha1", "size"}
        if unknown:
            raise DataError(
                f"dataset '{name}': unknown key(s) {', '.join(sorted(unknown))}; allowed: url, sha256, size"
            )
        sha256 = str(entry.get("sha256", "")).lower() or None
        blob = str(entry.get("git_blob_sha1", "")).lower() or None
        if not ((sha256 and _SHA256.match(sha256)) or (blob and _SHA1.match(blob))):
            raise DataError(f"dataset '{name}' needs a 64-hex-digit 'sha256' so its download can be verified")
        merged[str(name)] = DatasetSpec(str(name), str(entry["url"]), sha256, blob, entry.get("size"))
    return merged


def lookup(name: str, datasets: dict[str, DatasetSpec]) -> DatasetSpec:
    """The spec for ``name``, or a one-line error listing the known names and the closest one."""
    if name in datasets:
        return datasets[name]
    by_lower = {key.lower(): key for key in datasets}
    if name.lower() in by_lower:
        return datasets[by_lower[name.lower()]]
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
    hint = f"did you mean '{by_lower[close[0]]}'? " if close else ""
    raise DataError(f"unknown dataset '{name}'; {hint}known: {', '.join(sorted(datasets))} (or give a CSV path)")


def file_hash(path: Path, kind: str) -> str:
    if kind == "sha256":
        return pooch.file_hash(str(path), alg="sha256")
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_verified(spec: DatasetSpec, path: Path) -> bool:
    kind, expected = spec.expected_hash()
    return path.is_file() and file_hash(path, kind) == expected


def local_path(name: str, datasets: dict[str, DatasetSpec] | None = None) -> Path:
    """Path of a downloaded data set in :func:`data_dir`; an error that says how to get it if absent."""
    spec = lookup(name, datasets or KNOWN_DATASETS)
    path = data_dir() / spec.filename
    if not path.is_file():
        raise DataError(
            f"dataset '{spec.name}' is not downloaded in {data_dir()}; run `specmem download {spec.name}` "
            f"(or set {DATA_DIR_ENV})"
        )
    return path


def download(
    spec: DatasetSpec,
    directory: Path,
    mirror: str | None = None,
    force: bool = False,
    progressbar: Any = False,
) -> tuple[Path, bool]:
    """Fetch ``spec`` into ``directory``; returns the path and whether any transfer happened.

    ``mirror`` replaces the URL's base: an http(s) URL, or a local directory holding the file (for
    machines without internet). A verified file already present is reused unless ``force``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / spec.filename
    if target.exists() and (force or not is_verified(spec, target)):
        target.unlink()
    if target.exists():
        return target, False
    if mirror and not re.match(r"^https?://", mirror):
        _copy_from_directory(spec, Path(mirror), target)
    else:
        url = f"{mirror.rstrip('/')}/{spec.filename}" if mirror else spec.url
        _fetch(url, target, progressbar)
    _verify_or_remove(spec, target, source=target)
    return target, True


def _fetch(url: str, target: Path, progressbar: Any) -> None:
    pooch.get_logger().setLevel(logging.WARNING)
    try:
        pooch.retrieve(
            url,
            known_hash=None,
            fname=target.name,
            path=target.parent,
            downloader=pooch.HTTPDownloader(progressbar=progressbar, timeout=30),
        )
    except requests.exceptions.HTTPError as exc:
        raise DataError(
            f"could not download {url}: HTTP {exc.response.status_code}; check the name or use --mirror"
        ) from None
    except requests.exceptions.RequestException as exc:
        reason = type(exc).__name__
        raise DataError(f"network error downloading {url} ({reason}); retry, or use --mirror URL|DIRECTORY") from None


def _copy_from_directory(spec: DatasetSpec, mirror: Path, target: Path) -> None:
    source = mirror / spec.filename
    if not source.is_file():
        raise DataError(f"mirror directory {mirror} has no {spec.filename}; copy it there or use another --mirror")
    _verify_or_remove(spec, source, source=source, remove=False)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False) as temp:
        temp_path = Path(temp.name)
    shutil.copyfile(source, temp_path)
    os.replace(temp_path, target)


def _verify_or_remove(spec: DatasetSpec, path: Path, source: Path, remove: bool = True) -> None:
    kind, expected = spec.expected_hash()
    actual = file_hash(path, kind)
    if actual != expected:
        if remove:
            path.unlink(missing_ok=True)
        removed = " (removed)" if remove else ""
        raise DataError(
            f"checksum mismatch for {source}{removed}: {kind} expected {expected}, got {actual}; "
            "the download is corrupt or the source changed, retry or use another --mirror"
        )


def resolve_data_path(name_or_path: str, datasets: dict[str, DatasetSpec] | None = None) -> Path | None:
    """A CSV path for ``name_or_path`` (an existing file or a downloaded data set); None for the synthetic set."""
    if name_or_path == SYNTHETIC_NAME:
        return None
    candidate = Path(name_or_path)
    if candidate.suffix.lower() == ".csv" or candidate.exists():
        return candidate
    return local_path(name_or_path, datasets)
