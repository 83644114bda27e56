"""Shared fixtures: the real ETTh1 file and reference figures from ../shared, tiny configs, a local HTTP server."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest

from specmem_cli.config import config_from_dict

SHARED = Path(__file__).resolve().parents[2] / "shared"
ETTH1 = SHARED / "data" / "ETT-small" / "ETTh1.csv"
REFERENCE = SHARED / "reference"


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path, monkeypatch):
    """No test reads or writes the user's real data cache."""
    monkeypatch.setenv("SPECMEM_DATA_DIR", str(tmp_path / "data-cache"))


def tiny_config(**sections):
    """A config that trains in about a second: synthetic data, a 16-wide model, a few steps."""
    raw = {
        "data": {"name": "synthetic", "seq_len": 48, "pred_lens": [12]},
        "model": {
            "name": "klmemory",
            "d_model": 16,
            "n_heads": 2,
            "d_ff": 32,
            "e_layers": 1,
            "dropout": 0.0,
            "memory_depth": 64,
            "n_components": 4,
            "memory_tokens": 2,
            "projection": "bottleneck",
        },
        "train": {"epochs": 2, "batch_size": 32, "lr": 0.001, "max_steps": 12},
        "seeds": [7],
    }
    for name, values in sections.items():
        if isinstance(values, dict):
            raw[name] = {**raw[name], **values}
        else:
            raw[name] = values
    return config_from_dict(raw)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests_served: list[str]

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.requests_served.append(self.path)
        super().do_GET()


@pytest.fixture
def http_server(tmp_path):
    """Serve a temporary directory on 127.0.0.1; yields (base_url, directory, list of requested paths)."""
    root = tmp_path / "served"
    root.mkdir()
    served: list[str] = []
    handler = type("Handler", (_QuietHandler,), {"requests_served": served})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root, served
    finally:
        server.shutdown()
        server.server_close()
