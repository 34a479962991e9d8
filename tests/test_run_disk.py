"""Disk use of runs: a finished run keeps only what evaluation reads; the experiment's peak is measured."""

from __future__ import annotations

import time

from pst_core.evaluate.paper import DiskPeak
from pst_core.train import checkpoint


def test_drop_last_removes_the_resumable_state_and_its_leftovers(tmp_path):
    for name in ("last", ".tmp-last-step4", ".old-last-abc", "checkpoint"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "f.bin").write_bytes(b"x" * 10)
    checkpoint.drop_last(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    assert checkpoint.disk_usage(tmp_path) == 10 and checkpoint.disk_usage(tmp_path / "nothing") == 0


def test_disk_peak_sees_a_file_that_existed_only_between_samples_of_the_caller(tmp_path):
    with DiskPeak(tmp_path, every_s=0.01) as disk:
        (tmp_path / "last.bin").write_bytes(b"x" * 1_000_000)
        time.sleep(0.2)
        (tmp_path / "last.bin").unlink()
    assert disk.peak >= 1_000_000 and disk.last == 0
