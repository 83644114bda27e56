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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pooch
import requests

from specmem_cli.data.synthetic import SYNTHETIC_NAME
from specmem_cli.errors import DataError
from specmem_cli.files import NEW_FILE_MODE

DATA_DIR_ENV = "SPECMEM_DATA_DIR"
_ETT_BASE = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Protocol:
    """How a data set is benchmarked (Time-Series-Library): its split and its default windows."""

    split: str = "ratio"  # ett_hour / ett_minute month borders, or 70/10/20 by rows
    seq_len: int = 96
    pred_lens: tuple[int, ...] = (96, 192, 336, 720)


DEFAULT_PROTOCOL = Protocol()


@dataclass(frozen=True)
class DatasetSpec:
    """Where a data set comes from, how to recognise the right bytes, and its protocol.

    ``sha256`` lists every accepted digest (a file that circulates with CRLF and with LF line
    endings has two); ``git_blob_sha1`` (SHA-1 of ``"blob <size>\\0" + bytes``, the id git shows for
    a file) is accepted for files whose publisher only exposes that. A spec with no URL or no hash
    cannot be downloaded, but a local file of that name still gets the protocol.
    """

    name: str
    url: str | None = None
    sha256: tuple[str, ...] = ()
    git_blob_sha1: str | None = None
    protocol: Protocol = DEFAULT_PROTOCOL
    filename: str = ""

    def __post_init__(self):
        if not self.filename:
            default = self.url.rstrip("/").rsplit("/", 1)[-1] if self.url else f"{self.name}.csv"
            object.__setattr__(self, "filename", default)

    @property
    def verifiable(self) -> bool:
        return bool(self.sha256 or self.git_blob_sha1)

    def expected_hashes(self) -> list[tuple[str, str]]:
        return [("sha256", digest) for digest in self.sha256] + (
            [("git-blob-sha1", self.git_blob_sha1)] if self.git_blob_sha1 else []
        )


_ETT_HOUR, _ETT_MINUTE = Protocol(split="ett_hour"), Protocol(split="ett_minute")
KNOWN_DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "ETTh1",
            _ETT_BASE + "ETTh1.csv",
            ("f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066",),
            protocol=_ETT_HOUR,
        ),
        DatasetSpec(
            "ETTh2",
            _ETT_BASE + "ETTh2.csv",
            ("a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b",),
            protocol=_ETT_HOUR,
        ),
        DatasetSpec(
            "ETTm1",
            _ETT_BASE + "ETTm1.csv",
            ("6ce1759b1a18e3328421d5d75fadcb316c449fcd7cec32820c8dafda71986c9e",),
            protocol=_ETT_MINUTE,
        ),
        DatasetSpec(
            "ETTm2",
            _ETT_BASE + "ETTm2.csv",
            ("db973ca252c6410a30d0469b13d696cf919648d0f3fd588c60f03fdbdbadd1fd",),
            protocol=_ETT_MINUTE,
        ),
        # The TSL files below have no URL whose bytes specmem can vouch for: `specmem download NAME
        # --mirror DIR|URL` verifies a copy where a hash is known; a local NAME.csv gets the protocol.
        DatasetSpec(
            "weather",
            sha256=(
                "34ee981d07313e51da2a50bb600072c8ae4a69cb4b0651f4cb93a069d7a2ba63",  # CRLF, as TSL ships it
                "9b2b19b13e342d9c9b9c51620d42b4be232df7fba30e7f5c4968b7c79ab138ad",  # the same bytes with LF
            ),
        ),
        DatasetSpec("electricity"),
        DatasetSpec("traffic"),
        DatasetSpec("exchange_rate"),
        DatasetSpec("national_illness", protocol=Protocol(seq_len=36, pred_lens=(24, 36, 48, 60))),
    )
}


def protocol_for(name_or_path: str) -> Protocol:
    """The protocol of a known data set, by name or by a file's stem (``data/ETTm2.csv``); TSL's
    70/10/20 split with look-back 96 and horizons 96-720 for anything else."""
    name = Path(name_or_path).stem if name_or_path.lower().endswith(".csv") else name_or_path
    spec = _find(name, KNOWN_DATASETS)
    return spec.protocol if spec is not None else DEFAULT_PROTOCOL


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
        unknown = set(entry) - {"url", "sha256", "git_blob_sha1"}
        if unknown:
            raise DataError(f"dataset '{name}': unknown key(s) {', '.join(sorted(unknown))}; allowed: url, sha256")
        sha256 = str(entry.get("sha256", "")).lower() or None
        blob = str(entry.get("git_blob_sha1", "")).lower() or None
        if not ((sha256 and _SHA256.match(sha256)) or (blob and _SHA1.match(blob))):
            raise DataError(f"dataset '{name}' needs a 64-hex-digit 'sha256' so its download can be verified")
        merged[str(name)] = DatasetSpec(str(name), str(entry["url"]), (sha256,) if sha256 else (), blob)
    return merged


def _find(name: str, datasets: dict[str, DatasetSpec]) -> DatasetSpec | None:
    """The spec named ``name`` exactly, else case-insensitively (``etth1`` is ETTh1), else None."""
    if name in datasets:
        return datasets[name]
    by_lower = {key.lower(): spec for key, spec in datasets.items()}
    return by_lower.get(name.lower())


def lookup(name: str, datasets: dict[str, DatasetSpec], otherwise: str = "or give a CSV path") -> DatasetSpec:
    """The spec for ``name``, or a one-line error listing the known names, the closest one and ``otherwise``."""
    spec = _find(name, datasets)
    if spec is not None:
        return spec
    by_lower = {key.lower(): key for key in datasets}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
    hint = f"did you mean '{by_lower[close[0]]}'? " if close else ""
    raise DataError(f"unknown dataset '{name}'; {hint}known: {', '.join(sorted(datasets))} ({otherwise})")


def file_hash(path: Path, kind: str) -> str:
    if kind == "sha256":
        return pooch.file_hash(str(path), alg="sha256")
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def matches(spec: DatasetSpec, path: Path) -> tuple[bool, str]:
    """Whether ``path`` has one of the spec's accepted hashes, and what it has (for the error message)."""
    found = {kind: file_hash(path, kind) for kind in {kind for kind, _ in spec.expected_hashes()}}
    return any(found[kind] == value for kind, value in spec.expected_hashes()), ", ".join(
        f"{kind} {value}" for kind, value in sorted(found.items())
    )


def is_verified(spec: DatasetSpec, path: Path) -> bool:
    return path.is_file() and matches(spec, path)[0]


def local_path(name: str, datasets: dict[str, DatasetSpec] | None = None) -> Path:
    """Path of a downloaded data set in :func:`data_dir`; an error that says how to get it if absent."""
    spec = lookup(name, datasets or KNOWN_DATASETS)
    path = data_dir() / spec.filename
    if not path.is_file():
        how = (
            f"run `specmem download {spec.name}`"
            if spec.verifiable and spec.url
            else f"put {spec.filename} there yourself (specmem cannot download it)"
        )
        raise DataError(
            f"dataset '{spec.name}' is not in {data_dir()}; {how}, set {DATA_DIR_ENV}, or give the CSV's path"
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
    if not spec.verifiable:
        raise DataError(
            f"specmem knows no hash for '{spec.name}', so it cannot verify a download; put {spec.filename} in "
            f"{directory} (or pass --data path/to/{spec.filename}) and it is used with its protocol"
        )
    if mirror is None and spec.url is None:
        raise DataError(
            f"'{spec.name}' has no download address specmem can vouch for; fetch {spec.filename} yourself and run "
            f"`specmem download {spec.name} --mirror DIRECTORY` to verify and install it"
        )
    scheme = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://", mirror or "")
    if scheme and scheme.group(1).lower() not in ("http", "https"):
        raise DataError(f"--mirror {mirror}: a {scheme.group(1)} URL; give an http(s) URL or a local directory")
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / spec.filename
    if target.exists() and not force and is_verified(spec, target):
        return target, False
    # fetched beside the target and moved over it only once verified: a failed or corrupt download never
    # costs the file that was there (a mirror directory may even be the data directory itself)
    staged = directory / f".{spec.filename}.download"
    staged.unlink(missing_ok=True)
    try:
        if mirror and not scheme:
            _copy_from_directory(spec, Path(mirror), staged)
        else:
            url = f"{mirror.rstrip('/')}/{spec.filename}" if mirror else spec.url
            _fetch(url, staged, progressbar)
            _verify_or_remove(spec, staged, source=url)
        os.chmod(staged, NEW_FILE_MODE)
        os.replace(staged, target)
    except OSError as exc:  # network errors are DataErrors by now: this is the directory refusing a file
        reason = exc.strerror or type(exc).__name__
        raise DataError(f"cannot write {spec.filename} into {directory} ({reason}); choose another --dir") from None
    finally:
        staged.unlink(missing_ok=True)
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
    shutil.copyfile(source, target)  # the staged file, moved over the data file by the caller


def _verify_or_remove(spec: DatasetSpec, path: Path, source: Path | str, remove: bool = True) -> None:
    verified, actual = matches(spec, path)
    if not verified:
        if remove:
            path.unlink(missing_ok=True)
        removed = " (removed)" if remove else ""
        expected = " or ".join(f"{kind} {value}" for kind, value in spec.expected_hashes())
        raise DataError(
            f"checksum mismatch for {source}{removed}: expected {expected}, got {actual}; "
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
