"""`specmem download` against a local HTTP server on 127.0.0.1: no test touches the internet."""

from __future__ import annotations

import json
import shutil
import socket

import pytest
from typer.testing import CliRunner

from specmem_cli.cli import app
from specmem_cli.files import NEW_FILE_MODE
from tests.conftest import ETTH1

runner = CliRunner()
ETTH1_SHA256 = "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066"


def download(*args):
    return runner.invoke(app, ["download", *args, "--json"])


def test_fresh_then_cached_download(http_server, tmp_path):
    base, root, served = http_server
    shutil.copy(ETTH1, root / "ETTh1.csv")
    target = tmp_path / "cache"
    first = download("ETTh1", "--dir", str(target), "--mirror", base)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == {"name": "ETTh1", "path": str(target / "ETTh1.csv"), "downloaded": True}
    assert served == ["/ETTh1.csv"]
    second = download("ETTh1", "--dir", str(target), "--mirror", base)
    assert second.exit_code == 0 and json.loads(second.stdout)["downloaded"] is False
    assert served == ["/ETTh1.csv"], "a verified file must not be fetched again"
    forced = download("ETTh1", "--dir", str(target), "--mirror", base, "--force")
    assert forced.exit_code == 0 and len(served) == 2


def test_checksum_mismatch_removes_file_and_names_both_hashes(http_server, tmp_path):
    base, root, _ = http_server
    corrupted = bytearray(ETTH1.read_bytes())
    corrupted[100] ^= 0xFF
    (root / "ETTh1.csv").write_bytes(bytes(corrupted))
    result = download("ETTh1", "--dir", str(tmp_path / "cache"), "--mirror", base)
    assert result.exit_code == 1
    assert "checksum mismatch" in result.stderr and ETTH1_SHA256 in result.stderr and "got " in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "cache" / "ETTh1.csv").exists()


def test_existing_corrupt_copy_is_replaced(http_server, tmp_path):
    base, root, served = http_server
    shutil.copy(ETTH1, root / "ETTh1.csv")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "ETTh1.csv").write_text("date,x\n")
    result = download("ETTh1", "--dir", str(cache), "--mirror", base)
    assert result.exit_code == 0 and served == ["/ETTh1.csv"]
    assert (cache / "ETTh1.csv").read_bytes() == ETTH1.read_bytes()


def test_a_failed_download_never_costs_the_file_already_there(http_server, tmp_path):
    """--force or an unverified copy is replaced only by a verified download: a 404, a corrupt file or the
    data directory given as its own mirror leave what was there, and nothing staged behind."""
    base, root, _ = http_server
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(ETTH1, cache / "ETTh1.csv")
    assert download("ETTh1", "--dir", str(cache), "--mirror", base, "--force").exit_code == 1  # 404
    (root / "ETTh1.csv").write_text("date,x\n2020-01-01,1\n")
    corrupt = download("ETTh1", "--dir", str(cache), "--mirror", base, "--force")
    assert corrupt.exit_code == 1 and f"checksum mismatch for {base}/ETTh1.csv" in corrupt.stderr
    itself = download("ETTh1", "--dir", str(cache), "--mirror", str(cache), "--force")
    assert itself.exit_code == 0, itself.output
    edited = cache / "ETTh1.csv"
    assert edited.read_bytes() == ETTH1.read_bytes() and edited.stat().st_mode & 0o777 == NEW_FILE_MODE
    edited.write_text("my own edits\n")
    assert download("ETTh1", "--dir", str(cache), "--mirror", base).exit_code == 1
    assert edited.read_text() == "my own edits\n" and [p.name for p in cache.iterdir()] == ["ETTh1.csv"]


def test_mirror_as_local_directory(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(ETTH1, mirror / "ETTh1.csv")
    result = download("ETTh1", "--dir", str(tmp_path / "cache"), "--mirror", str(mirror))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cache" / "ETTh1.csv").read_bytes() == ETTH1.read_bytes()


def test_a_mirror_url_of_another_scheme_is_refused_not_read_as_a_directory(tmp_path):
    result = download("ETTh1", "--dir", str(tmp_path / "cache"), "--mirror", "ftp://example.org/data")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "--mirror ftp://example.org/data: a ftp URL; give an http(s) URL or a local directory" in result.stderr
    assert not (tmp_path / "cache").exists()


def test_default_directory_is_specmem_data_dir(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(ETTH1, mirror / "ETTh1.csv")
    monkeypatch.setenv("SPECMEM_DATA_DIR", str(tmp_path / "from-env"))
    assert download("ETTh1", "--mirror", str(mirror)).exit_code == 0
    assert (tmp_path / "from-env" / "ETTh1.csv").is_file()


def test_unknown_name_lists_known_and_suggests():
    result = download("etth3")
    assert result.exit_code == 1
    assert "unknown dataset 'etth3'" in result.stderr and "did you mean" in result.stderr and "ETTm2" in result.stderr
    assert "CSV path" not in result.stderr and "--config" in result.stderr  # download cannot take a CSV


def test_network_failure_suggests_mirror(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = download("ETTh1", "--dir", str(tmp_path), "--mirror", f"http://127.0.0.1:{port}")
    assert result.exit_code == 1 and "network error" in result.stderr and "--mirror" in result.stderr


def test_http_404_is_reported(http_server, tmp_path):
    base, _, _ = http_server
    result = download("ETTh1", "--dir", str(tmp_path), "--mirror", base)
    assert result.exit_code == 1 and "HTTP 404" in result.stderr


def test_user_registered_dataset(http_server, tmp_path):
    base, root, _ = http_server
    shutil.copy(ETTH1, root / "mine.csv")
    config = tmp_path / "datasets.yaml"
    config.write_text(f"datasets:\n  mine:\n    url: {base}/mine.csv\n    sha256: {ETTH1_SHA256}\n")
    result = download("mine", "--dir", str(tmp_path / "cache"), "--config", str(config))
    assert result.exit_code == 0, result.output
    config.write_text(f"datasets:\n  mine:\n    url: {base}/mine.csv\n")
    result = download("mine", "--config", str(config))
    assert result.exit_code == 1 and "needs a 64-hex-digit 'sha256'" in result.stderr


@pytest.mark.parametrize("name", ["ETTm1", "ETTm2"])
def test_ett_minute_files_verify_by_sha256(tmp_path, name):
    real = ETTH1.parent / f"{name}.csv"
    if not real.is_file():
        pytest.skip(f"{real} is absent")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / f"{name}.csv").write_text("not the real file\n")
    result = download(name, "--dir", str(tmp_path / "cache"), "--mirror", str(mirror))
    assert result.exit_code == 1 and "expected sha256" in result.stderr
    shutil.copy(real, mirror / f"{name}.csv")
    result = download(name, "--dir", str(tmp_path / "cache"), "--mirror", str(mirror))
    assert result.exit_code == 0, result.output


def test_a_directory_that_refuses_the_file_is_named_and_left_clean(tmp_path, monkeypatch):
    from specmem_cli.data import registry

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(ETTH1, mirror / "ETTh1.csv")
    cache = tmp_path / "cache"

    def refuse(*_):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(registry.os, "replace", refuse)
    result = download("ETTh1", "--dir", str(cache), "--mirror", str(mirror))
    assert result.exit_code == 1 and f"cannot write ETTh1.csv into {cache} (Permission denied)" in result.stderr
    assert list(cache.iterdir()) == []
