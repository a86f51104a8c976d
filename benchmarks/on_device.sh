#!/usr/bin/env bash
# The GPU figures through the `device` tool (a lent machine with PyTorch and CUDA but no package registry).
#
#   here:      bash benchmarks/on_device.sh prepare      # wheels and the real volumes into .device/ (ignored)
#   device:    run(command="bash benchmarks/on_device.sh run infer,pipeline,enhance,batch,profile", carry=[".device"],
#                  timeout_s=540)
#
# `run` installs the carried wheels (zarr and its codecs: all the image lacks), puts engine/ and macros/ on
# PYTHONPATH as the `damselfly` package, checks that no read/write thread and no pinned buffer is left
# after infer, and runs benchmarks/bench_gpu.py with the sections named (see its docstring), writing
# everything to $OUT/bench_gpu.txt as well. Sections and their device seconds on an H200 (2026-11-30 for
# the first four): infer 60, denoise 180, train 60, tomo 40, precision 200, profile 20; pipeline, enhance,
# compile, compile_train, seeds and batch have not run on a GPU yet (estimates 40, 40, 120, 150, 250, 180).
# Two calls hold issue 34's figures: "infer,pipeline,enhance,batch,profile", then "compile,compile_train,seeds".
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
prepare)
    mkdir -p .device/wheels .device/data
    .venv/bin/python -m pip download -q --only-binary=:all: --no-deps --python-version 3.12 \
        --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 -d .device/wheels \
        zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0
    cp ../shared/data/nuclei.tif ../shared/data/nuclei_labels.tif ../shared/data/tomo.tif .device/data/
    du -sh .device ;;
run)
    python -m pip install -q --no-index --find-links .device/wheels zarr numcodecs donfig google-crc32c 2>&1 | tail -1 || true
    mkdir -p .device/pkg/damselfly
    ln -sfn "$PWD/engine" .device/pkg/damselfly/engine
    ln -sfn "$PWD/macros" .device/pkg/damselfly/macros
    export PYTHONPATH="$PWD/.device/pkg"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    python - <<'PY'
import threading, numpy as np, torch
from damselfly.engine.segmentation import _inference as inf
from damselfly.engine.segmentation._model import load_model
model = load_model("examples/models/casting.dfmodel")
vol = __import__("damselfly.engine", fromlist=["Volume"]).Volume(
    np.random.default_rng(0).integers(0, 60000, (40, 256, 256), dtype=np.uint16), name="scan")
out = np.zeros(vol.shape, np.uint8)
inf.segment(model, [vol], out, device="cuda")
stats = getattr(torch.cuda, "host_memory_stats", lambda: {})()
left = [t.name for t in threading.enumerate() if t.name.startswith("damselfly-io")]
print("after infer on the GPU: io threads left", left, "; pinned host memory in use:",
      stats.get("allocated_bytes.current", stats.get("active_bytes.all.current", "n/a")), flush=True)
PY
    python benchmarks/bench_gpu.py --data .device/data --only "${2:-infer,pipeline,enhance,batch,profile}" \
        2>&1 | tee "${OUT:-/tmp}/bench_gpu.txt" ;;
*)
    echo "usage: bash benchmarks/on_device.sh prepare | run SECTIONS" >&2; exit 2 ;;
esac
