import os

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from pst_core import examples, store
from pst_core.errors import DataError


def _examples(task="addsub", split="train", n=3):
    return [
        examples.Example(examples.make_id(task, i), task, split, f"q{i}?", str(i), "number", [], None, "test", i)
        for i in range(n)
    ]


def test_write_split_is_idempotent_and_leaves_one_part(store_root):
    examples.write_split(store_root, "addsub", "train", _examples())
    first = open(examples.store.list_parts(f"{store_root}/examples")[0], "rb").read()
    examples.write_split(store_root, "addsub", "train", _examples())
    parts = store.list_parts(f"{store_root}/examples")
    assert len(parts) == 1 and open(parts[0], "rb").read() == first


def test_store_reads_back_with_partition_columns(store_root):
    examples.write_split(store_root, "addsub", "train", _examples())
    examples.write_split(store_root, "addsub", "test", _examples(split="test", n=2))
    assert examples.counts(store_root) == {("addsub", "test"): 2, ("addsub", "train"): 3}
    loaded = examples.load(store_root, "addsub", "test")
    assert [e.example_id for e in loaded] == ["addsub-00000", "addsub-00001"] and loaded[0].split == "test"


def test_store_is_readable_by_pandas_pyarrow_and_datasets(store_root):
    examples.write_split(store_root, "addsub", "train", _examples())
    root = f"{store_root}/examples"
    df = pd.read_parquet(root)
    assert len(df) == 3 and set(df["task"].astype(str)) == {"addsub"}
    table = pads.dataset(root, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 3 and "split" in table.column_names
    import datasets

    ds = datasets.load_dataset("parquet", data_files={"train": f"{root}/task=addsub/split=train/*.parquet"}, split="train")
    assert ds.num_rows == 3 and ds[0]["example_id"] == "addsub-00000"


def test_failed_write_leaves_nothing_half_written(store_root, monkeypatch):
    import pyarrow.parquet as pq

    def boom(table, where, **kw):
        open(where, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(OSError):
        store.write_part(f"{store_root}/x", pa.table({"a": [1]}))
    assert os.listdir(f"{store_root}/x") == []


def test_partition_names_are_validated():
    with pytest.raises(DataError, match="invalid teacher name"):
        store.partition_path("/r", "rationales", teacher="../evil")


def test_preview_reports_schema_rows_and_head(store_root):
    examples.write_split(store_root, "addsub", "train", _examples())
    info = store.preview(f"{store_root}/examples", rows=2)
    assert info["num_rows"] == 3 and len(info["head"]) == 2 and info["schema"]["question"] == "string"
