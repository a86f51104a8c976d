"""The GPU benchmark is run only where a GPU is lent, rarely and against the clock: its ``--quick`` mode
(tiny sizes on the CPU) must keep working, section by section."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def stand_ins(tmp_path):
    """Small stand-ins for the real volumes (../shared/data)."""
    import numpy as np
    import tifffile

    rng = np.random.default_rng(0)
    lab = np.zeros((60, 64, 64), np.uint8)
    lab[:, 16:40, 20:44] = 3
    tifffile.imwrite(tmp_path / "nuclei_labels.tif", lab)
    tifffile.imwrite(tmp_path / "nuclei.tif", (lab * 300.0 + rng.normal(100, 30, lab.shape)).astype(np.uint16))
    tifffile.imwrite(tmp_path / "tomo.tif", rng.normal(0, 1, (12, 40, 40)).astype(np.float32))
    return tmp_path


@pytest.mark.slow
def test_the_gpu_benchmark_runs_every_section_in_its_quick_mode(stand_ins):
    tmp_path = stand_ins
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--quick", "--data", str(tmp_path),
                        "--only", "infer,enhance,denoise,train,tomo,precision,profile,pipeline,compile,compile_train,seeds,batch"],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    assert "failed" not in out, out[-3000:]
    for line in ("infer, default model", "GPU fp32 (autocast off)", "GPU 3d", "enhance (2.5d denoiser)",
                 "train, U-Net, nuclei", "CPU (", "defaults (arch auto) on the GPU", "tomogram", "strict fp32", "trained with TF32 off",
                 "profile, train (nuclei)", "profile, train_denoiser", "pipeline / bare I/O", "default         :",
                 "seed 0, cuDNN off", "batch  4 x  2 steps",
                 "default          2.5d denoiser, phantom",
                 "enhance (3d denoiser), (16, 128, 128) float32 memory-mapped"):
        assert line in out, (line, out[-3000:])


def test_the_roofline_counts_a_convolutions_flops_and_bytes_by_hand():
    import torch
    from torch import nn

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_roofline import conv_layers

    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ConvTranspose2d(3, 4, 2, stride=2))
    conv, up = conv_layers(net, torch.zeros(1, 2, 8, 8))
    # 3 x 3 x 2 multiply-adds for each of 3 x 8 x 8 outputs; each of the 3 x 8 x 8 inputs spreads 2 x 2 x 4
    assert (conv["flops"], up["flops"]) == (2 * 3 * 64 * 9 * 2, 2 * 3 * 64 * 4 * 4)
    assert (conv["acts"], up["acts"]) == (2 * 64 + 3 * 64, 3 * 64 + 4 * 256)
    assert (conv["weights"], up["weights"]) == (3 * 2 * 9 + 3, 3 * 4 * 4 + 4)
    assert (conv["size"], up["size"]) == ("8x8", "16x16")


def test_the_batch_benchmark_scores_each_configuration_and_sums_them_up(stand_ins):
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_batch.py"), "--data", str(stand_ins),
                        "--seeds", "0", "--configs", "2x2,4x1", "--epochs", "1"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "seed 0, batch   2 x   2 steps: Dice" in r.stdout and "4 patches" in r.stdout, r.stdout
    assert "nucleus Dice over the seeds: 2x2: " in r.stdout and "; 4x1: " in r.stdout, r.stdout
