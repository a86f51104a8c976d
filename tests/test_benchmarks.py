"""The GPU benchmark is run only where a GPU is lent, rarely and against the clock: its ``--quick`` mode
(tiny sizes on the CPU) must keep working, section by section."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_benchmark_runs_every_section_in_its_quick_mode(tmp_path):
    import numpy as np
    import tifffile

    rng = np.random.default_rng(0)  # small stand-ins for the real volumes (../shared/data)
    lab = np.zeros((60, 64, 64), np.uint8)
    lab[:, 16:40, 20:44] = 3
    tifffile.imwrite(tmp_path / "nuclei_labels.tif", lab)
    tifffile.imwrite(tmp_path / "nuclei.tif", (lab * 300.0 + rng.normal(100, 30, lab.shape)).astype(np.uint16))
    tifffile.imwrite(tmp_path / "tomo.tif", rng.normal(0, 1, (12, 40, 40)).astype(np.float32))
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--quick", "--data", str(tmp_path),
                        "--only", "infer,denoise,train,tomo,precision,profile,pipeline,compile,compile_train,seeds,batch"],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    assert "failed" not in out, out[-3000:]
    for line in ("infer, default model", "GPU fp32 (autocast off)", "GPU 3d", "enhance (2.5d denoiser)",
                 "train, U-Net, nuclei", "CPU (", "defaults (arch auto) on the GPU", "tomogram", "strict fp32", "trained with TF32 off",
                 "profile, train (nuclei)", "profile, train_denoiser", "pipeline / bare I/O", "default         :",
                 "seed 0, cuDNN off", "batch  4 x  2 steps",
                 "default          2.5d denoiser, phantom"):
        assert line in out, (line, out[-3000:])
