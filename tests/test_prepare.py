"""`prepare_task`: atomic, idempotent writes of every split; malformed files write nothing."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from pst_core import examples
from pst_core.errors import ConfigError, DataError
from pst_core.prepare import PrepareConfig, prepare_task

GENERATED = PrepareConfig(source="generated", generated_size=60)


def _files(root: str) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def test_prepare_writes_every_split_as_hive_partitions(store_root: str) -> None:
    counts = prepare_task("coin_flip", GENERATED, store_root)
    assert counts == {"train": 38, "validation": 4, "test": 18}
    assert {k: v for (t, k), v in examples.counts(store_root).items() if t == "coin_flip"} == counts
    assert sorted(_files(store_root)) == [f"examples/task=coin_flip/split={s}/part-00000.parquet" for s in ("test", "train", "validation")]


def test_prepare_twice_writes_identical_bytes(store_root: str) -> None:
    prepare_task("last_letter_concatenation", GENERATED, store_root)
    first = _files(store_root)
    prepare_task("last_letter_concatenation", GENERATED, store_root)
    assert _files(store_root) == first


def test_store_is_readable_by_pandas_pyarrow_and_datasets(store_root: str) -> None:
    import datasets
    import pandas as pd
    import pyarrow.dataset as pads

    prepare_task("coin_flip", GENERATED, store_root)
    folder = Path(store_root) / "examples"
    frame = pd.read_parquet(folder)
    assert len(frame) == 60 and set(frame["split"].astype(str)) == {"train", "validation", "test"}
    table = pads.dataset(folder, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 60 and {"task", "split", "example_id", "gold_answer"} <= set(table.column_names)
    hf = datasets.load_dataset("parquet", data_files={"test": str(folder / "task=coin_flip/split=test/*.parquet")},
                               cache_dir=str(Path(store_root).parent / "hf-cache"))
    assert hf["test"].num_rows == 18 and hf["test"][0]["example_id"].startswith("coin_flip-")


def test_prepare_from_local_files_keeps_published_ids(store_root: str, datasets_dir: Path) -> None:
    counts = prepare_task("addsub", PrepareConfig(datasets_dir=str(datasets_dir)), store_root)
    assert counts == {"train": 248, "validation": 28, "test": 119}
    stored = {e.example_id: e for s in ("train", "validation", "test") for e in examples.load(store_root, "addsub", s)}
    assert stored["addsub-00000"].gold_answer == "43" and stored["addsub-00000"].source_index == 0


def _broken_copy(datasets_dir: Path, tmp_path: Path) -> Path:
    """A datasets folder whose AddSub file has a row without its question (row 2)."""
    target = tmp_path / "datasets"
    relative = Path("zero_shot_cot/dataset/AddSub/AddSub.json")
    (target / relative).parent.mkdir(parents=True)
    rows = json.loads((datasets_dir / relative).read_text())
    del rows[2]["sQuestion"]
    (target / relative).write_text(json.dumps(rows))
    (target / "reasoning_teacher/split").mkdir(parents=True)
    shutil.copy(datasets_dir / "reasoning_teacher/split/addsub__default.json", target / "reasoning_teacher/split")
    return target


def test_malformed_file_names_file_and_row_and_writes_nothing(store_root: str, datasets_dir: Path, tmp_path: Path) -> None:
    broken = _broken_copy(datasets_dir, tmp_path)
    with pytest.raises(DataError, match=r"AddSub\.json: row 2 is malformed \(KeyError: 'sQuestion'\)") as err:
        prepare_task("addsub", PrepareConfig(datasets_dir=str(broken)), store_root)
    assert "\n" not in str(err.value)
    assert not Path(store_root).exists()


def test_malformed_file_leaves_a_previous_store_untouched(store_root: str, datasets_dir: Path, tmp_path: Path) -> None:
    prepare_task("addsub", PrepareConfig(datasets_dir=str(datasets_dir)), store_root)
    before = _files(store_root)
    with pytest.raises(DataError):
        prepare_task("addsub", PrepareConfig(datasets_dir=str(_broken_copy(datasets_dir, tmp_path))), store_root)
    assert _files(store_root) == before


def test_invalid_json_line_names_file_and_row(store_root: str, tmp_path: Path) -> None:
    folder = tmp_path / "datasets" / "gsm8k"
    folder.mkdir(parents=True)
    good = json.dumps({"question": "q", "answer": "s\n#### 1"})
    with gzip.open(folder / "train.jsonl.gz", "wt") as fh:
        fh.write(good + "\n" + good + "\n{not json\n")
    (folder / "test.jsonl").write_text(good + "\n")
    with pytest.raises(DataError, match=r"train\.jsonl\.gz: row 2 \(line 3\) is not valid JSON"):
        prepare_task("gsm8k", PrepareConfig(datasets_dir=str(tmp_path / "datasets")), store_root)
    assert not Path(store_root).exists()


@pytest.mark.parametrize("bad", [{"source": "web"}, {"validation_fraction": 1.0}, {"seed": -1}, {"generated_size": 0}])
def test_prepare_config_rejects_out_of_range_values(bad: dict) -> None:
    with pytest.raises(ConfigError):
        PrepareConfig(**bad)
