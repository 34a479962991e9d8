"""bench/gpu_carry.py: the carry folder holds everything the GPU runs and their result files need."""

from __future__ import annotations

import importlib.util
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def gpu_carry():
    spec = importlib.util.spec_from_file_location("gpu_carry", REPO / "bench" / "gpu_carry.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_store(root: Path) -> None:
    """What the data phase leaves, plus a run and a robustness plot that must stay behind."""
    for part in ("examples/task=svamp/split=test", "rationales/teacher=t/task=svamp", "embeddings/teacher=t"):
        (root / part).mkdir(parents=True)
        (root / part / "00000.parquet").write_bytes(b"PAR1")
    (root / "teachers.yaml").write_text("t: {base_url: 'http://127.0.0.1:1/v1', model: m}\n")
    (root / "experiments" / "paper").mkdir(parents=True)
    (root / "experiments" / "paper" / "teacher.json").write_text('{"svamp": {"accuracy": 0.7, "n": 3, "test_n": 3}}')
    (root / "experiments" / "paper" / "wall.json").write_text('{"seconds": 12.0}')
    (root / "experiments" / "paper-robustness-svamp").mkdir()
    (root / "experiments" / "paper-robustness-svamp" / "robustness.png").write_bytes(b"\x89PNG")
    (root / "runs" / "paper-svamp-pst-c0-s0").mkdir(parents=True)
    (root / "runs" / "paper-svamp-pst-c0-s0" / "metrics.json").write_text("{}")


def test_pack_carries_the_store_and_the_experiments_teacher_accuracy(gpu_carry, tmp_path, monkeypatch) -> None:
    root, carry = tmp_path / "store", tmp_path / "carry"
    fake_store(root)
    gguf = tmp_path / "student.gguf"
    gguf.write_bytes(bytes(range(256)) * 9)
    monkeypatch.setattr(gpu_carry, "gguf_source", lambda: gguf)

    def fake_download(dest: Path) -> Path:  # no network: the wheel is a placeholder
        wheel = dest / "gguf-0.19.0-py3-none-any.whl"
        wheel.write_bytes(b"PK")
        return wheel

    assert gpu_carry.pack(root, carry, download=fake_download).name == "gguf-0.19.0-py3-none-any.whl"
    assert (carry / "part-aa").read_bytes() + (carry / "part-ab").read_bytes() == gguf.read_bytes()
    with tarfile.open(carry / "store.tgz") as tar:
        names = set(tar.getnames())
        assert tar.extractfile("experiments/paper/teacher.json").read() == (root / "experiments/paper/teacher.json").read_bytes()
    assert {"examples", "rationales", "embeddings", "teachers.yaml", "experiments/paper/teacher.json"} <= names
    assert "examples/task=svamp/split=test/00000.parquet" in names
    assert not [n for n in names if n.startswith("runs") or n.endswith((".png", "wall.json"))]


def test_pack_without_the_data_phase_says_what_to_run(gpu_carry, tmp_path) -> None:
    with pytest.raises(SystemExit, match="--phase data"):
        gpu_carry.pack(tmp_path / "empty", tmp_path / "carry", download=None)
