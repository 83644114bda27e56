"""The data layer against TSL's ETTh1 protocol figures, plus every bad-CSV case."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from specmem_cli.data import load_table, prepare, synthetic_table
from specmem_cli.data.splits import split_borders
from specmem_cli.data.table import Reading, read_table
from specmem_cli.errors import DataError
from tests.conftest import ETTH1, REFERENCE

PROTOCOL = json.loads((REFERENCE / "etth1_protocol.json").read_text())


@pytest.fixture(scope="module")
def etth1():
    return read_table(ETTH1)


@pytest.mark.parametrize("pred_len", [96, 192, 336, 720])
def test_etth1_matches_tsl_protocol(etth1, pred_len):
    data = prepare(etth1, seq_len=96, pred_len=pred_len)
    counts = PROTOCOL["windows_seq96"][str(pred_len)]
    assert (len(data.train), len(data.val), len(data.test)) == (counts["train"], counts["val"], counts["test"])
    np.testing.assert_allclose(data.scaler.mean_, PROTOCOL["train_mean"], rtol=1e-9)
    np.testing.assert_allclose(data.scaler.scale_, PROTOCOL["train_std"], rtol=1e-9)
    inputs, targets, _ = data.test.batch(torch.tensor([0]))
    np.testing.assert_allclose(inputs[0, 0].numpy(), PROTOCOL["test_first_window_first_row_scaled"], atol=1e-6)
    # a target is the horizon alone: its first row is the first predicted row
    assert targets.shape == (1, pred_len, 7)
    np.testing.assert_allclose(targets[0, 0].numpy(), PROTOCOL["test_first_target_row_scaled_pl96"], atol=1e-6)
    assert data.columns == PROTOCOL["columns"][1:]


def test_etth1_borders_ignore_rows_past_14400(etth1):
    assert etth1.n_rows == PROTOCOL["rows"]
    assert split_borders(etth1.n_rows, 96, "ett_hour") == [(0, 8640), (8544, 11520), (11424, 14400)]


def test_windows_are_views_matching_manual_slices():
    data = prepare(synthetic_table(), seq_len=48, pred_len=12)
    index = torch.tensor([0, 5, 17])
    inputs, targets, _ = data.train.batch(index)
    series = data.train.series
    for row, start in enumerate(index.tolist()):
        torch.testing.assert_close(inputs[row], series[start : start + 48])
        torch.testing.assert_close(targets[row], series[start + 48 : start + 48 + 12])
    assert data.train._inputs.untyped_storage().data_ptr() == series.untyped_storage().data_ptr()


def test_batches_cover_every_window_once_without_dropping():
    data = prepare(synthetic_table(), seq_len=48, pred_len=12)
    batches = list(data.val.batches(32, shuffle=True, generator=torch.Generator().manual_seed(0)))
    sizes = [inputs.shape[0] for inputs, *_ in batches]
    assert sizes == [32] * (len(data.val) // 32) + ([len(data.val) % 32] if len(data.val) % 32 else [])
    seen = torch.cat([positions for *_, positions in batches])  # a window's start: one per window
    assert not torch.equal(seen, data.val.positions)  # shuffled
    assert torch.equal(seen.sort().values, data.val.positions.sort().values)  # yet every window exactly once


def test_ratio_split_for_other_csvs():
    table = synthetic_table(n_rows=1000)
    assert split_borders(table.n_rows, 48, "ratio") == [(0, 700), (700 - 48, 800), (800 - 48, 1000)]


def test_feature_modes_put_target_last():
    table = synthetic_table()
    single = prepare(table, 48, 12, features="S")
    many_to_one = prepare(table, 48, 12, features="MS", target="HUFL")
    assert single.columns == ["OT"] and single.output_columns == ["OT"]
    assert many_to_one.columns[-1] == "HUFL" and many_to_one.output_columns == ["HUFL"]
    _, targets, _ = many_to_one.train.batch(torch.tensor([0]))
    assert targets.shape[-1] == 1


def test_synthetic_is_deterministic_and_seed_dependent():
    a, b, c = synthetic_table(seed=0), synthetic_table(seed=0), synthetic_table(seed=1)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.allclose(a.values, c.values)
    assert a.values.shape == (3000, 7) and a.dates.freqstr in ("h", "H")


def _write(tmp_path, text, name="bad.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD_HEADER = "date,a,b\n"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("x,a,b\nfoo,1,2\nbar,3,4\n", "no column reads as dates"),
        (GOOD_HEADER + "2020-01-01 00:00,1,oops\n2020-01-01 01:00,2,3\n", "column 'b' holds numbers and text"),
        (
            GOOD_HEADER + "2020-01-01 00:00,1,2\n2020-01-01 01:00,nan,3\n",
            "1 missing or NaN/inf value(s), first in column 'a' at data row 2",
        ),
        (GOOD_HEADER + "2020-01-01 00:00,1,2\n2020-01-01 00:00,2,3\n", "duplicated timestamp"),
        (GOOD_HEADER + "2020-01-01 01:00,1,2\n2020-01-01 00:00,2,3\n", "not sorted"),
        (GOOD_HEADER + "2020-01-01 00:00,1,2\nnot-a-date,2,3\n", "'not-a-date' at data row 2"),
        ("", "not a readable CSV"),
        ('date,a\n2020-01-01,"1\n', "not a readable CSV"),
    ],
)
def test_bad_csv_is_one_line_error(tmp_path, content, fragment):
    with pytest.raises(DataError) as caught:
        read_table(_write(tmp_path, content))
    message = str(caught.value)
    assert fragment in message and "\n" not in message


def test_a_row_repeated_whole_is_kept_with_a_note(tmp_path, caplog):
    content = GOOD_HEADER + "2020-01-01 00:00,1,2\n2020-01-01 01:00,2,3\n2020-01-01 01:00,2,3\n2020-01-01 02:00,4,5\n"
    with caplog.at_level("INFO", logger="specmem_cli"):
        table = read_table(_write(tmp_path, content))
    assert (
        table.n_rows == 4
        and "1 row(s) repeated whole (same time, same values; first at 2020-01-01 01:00:00)" in caplog.text
    )


def test_missing_file_and_unknown_target(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_table(tmp_path / "absent.csv")
    with pytest.raises(DataError, match=r"unknown target column 'nope'.*fix --target"):
        prepare(synthetic_table(), 48, 12, features="S", target="nope")


def test_series_too_short_for_a_split():
    with pytest.raises(DataError, match=r"the val split has .* too few for seq_len 96 \+ pred_len 96"):
        prepare(synthetic_table(n_rows=600), 96, 96)


@pytest.mark.parametrize("method", ["ffill", "interpolate"])
def test_fill_repairs_gaps(tmp_path, method):
    path = _write(tmp_path, GOOD_HEADER + "2020-01-01 00:00,1,2\n2020-01-01 01:00,,3\n2020-01-01 02:00,3,inf\n")
    table = read_table(path, Reading(fill=method))
    assert np.isfinite(table.values).all()
    assert table.values[1, 0] == (1.0 if method == "ffill" else 2.0)


def test_explicit_date_column_and_unknown_name(tmp_path):
    frame = pd.DataFrame({"when": pd.date_range("2021-01-01", periods=3, freq="D"), "v": [1.0, 2.0, 3.0]})
    path = tmp_path / "daily.csv"
    frame.to_csv(path, index=False)
    assert read_table(path, Reading(date_col="when")).columns == ["v"]
    with pytest.raises(DataError, match="no column named 'day'"):
        read_table(path, Reading(date_col="day"))


def test_unknown_dataset_name_suggests_close_match():
    with pytest.raises(DataError, match="did you mean 'ETTh1'"):
        load_table("ETTH1x")
