"""Why bf16 gains little for our networks: arithmetic intensity of every convolution (issue 34).

Runs a network once on the CPU with hooks on its convolutions and counts, per layer, the floating-point
operations (2 x in-channels x out-channels x kernel voxels per output voxel) and the bytes a GPU must at
least move (the layer's input and output activations, and its weights), in fp32 and in bf16. A layer whose
FLOP per byte lies below the GPU's ridge point (peak FLOP/s over memory bandwidth) is bound by memory,
not by the matrix units: bf16 halves its bytes at best, and autocast spends a cast on each input. This is
arithmetic, not a timing: the GPU sections of ``bench_gpu.py`` (``infer``, ``precision``, ``compile``,
``compile_train``, ``batch``) measure what it predicts.

    python benchmarks/bench_roofline.py [--model examples/models/casting.dfmodel] [--tile 512] [--batch 8]
                                        [--denoiser]

Ridge points printed for reference (dense, vendor data sheets): H100 SXM 989 TFLOP/s bf16, 495 TF32,
3.35 TB/s; H200 the same compute with 4.8 TB/s.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
GPUS = {"H100 SXM": (989e12, 495e12, 3.35e12), "H200": (989e12, 495e12, 4.8e12)}


def conv_layers(net: nn.Module, x: torch.Tensor) -> list[dict]:
    """Each convolution's FLOPs and minimum bytes (fp32) for one forward pass of ``x``."""
    rows = []

    def hook(mod, inp, out):
        k = int(torch.tensor(mod.kernel_size).prod())
        cin, cout = mod.in_channels // mod.groups, mod.out_channels
        if isinstance(mod, (nn.ConvTranspose2d, nn.ConvTranspose3d)):  # each input voxel spreads a kernel
            flops = 2 * inp[0].numel() * cout * k // mod.groups
        else:
            flops = 2 * out.numel() * cin * k
        rows.append({"layer": f"{type(mod).__name__} {mod.in_channels}->{mod.out_channels}",
                     "size": "x".join(str(s) for s in out.shape[2:]), "flops": flops,
                     "acts": inp[0].numel() + out.numel(), "weights": sum(p.numel() for p in mod.parameters())})

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d))]
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    return rows


def report(rows: list[dict], voxels: int) -> None:
    print(f"{'layer':28s} {'size':>10s} {'GFLOP':>8s} {'MB fp32':>8s} {'FLOP/B fp32':>11s} {'FLOP/B bf16':>11s}")
    for r in rows:
        b32 = 4 * (r["acts"] + r["weights"])
        print(f"{r['layer']:28s} {r['size']:>10s} {r['flops'] / 1e9:8.2f} {b32 / 1e6:8.1f} {r['flops'] / b32:11.0f} "
              f"{r['flops'] / (b32 / 2):11.0f}")
    flops = sum(r["flops"] for r in rows)
    b32 = sum(4 * (r["acts"] + r["weights"]) for r in rows)
    print(f"\nall convolutions: {flops / voxels:,.0f} FLOP and {b32 / voxels:,.0f} bytes (fp32) a voxel: "
          f"{flops / b32:.0f} FLOP/byte in fp32, {2 * flops / b32:.0f} in bf16")
    bound = sum(4 * (r["acts"] + r["weights"]) for r in rows if r["flops"] / (2 * (r["acts"] + r["weights"])) < 150)
    print(f"bytes in layers below 150 FLOP/byte in bf16 (memory-bound on either GPU): {bound / b32:.0%}")
    for gpu, (bf16, tf32, bw) in GPUS.items():
        t_bw32, t_bw16 = b32 / bw, b32 / 2 / bw
        t_c32, t_c16 = flops / tf32, flops / bf16
        print(f"{gpu:9s}: ridge {bf16 / bw:.0f} FLOP/byte bf16, {tf32 / bw:.0f} TF32. Lower bound a voxel: "
              f"TF32 {max(t_bw32, t_c32) / voxels * 1e9:.2f} ns (memory {t_bw32 / voxels * 1e9:.2f}, compute "
              f"{t_c32 / voxels * 1e9:.2f}), bf16 {max(t_bw16, t_c16) / voxels * 1e9:.2f} ns (memory "
              f"{t_bw16 / voxels * 1e9:.2f}, compute {t_c16 / voxels * 1e9:.2f})")
        print(f"{'':9s}  this batch: forward at least {max(t_bw32, t_c32) * 1e6:.0f} us in TF32; a training step "
              f"(forward and backward, about 3x) {3 * max(t_bw32, t_c32) * 1e6:.0f} us")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "examples" / "models" / "casting.dfmodel"))
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--denoiser", action="store_true", help="the 2.5d denoiser's network instead of --model")
    a = ap.parse_args()
    if a.denoiser:
        from damselfly.engine.segmentation import _nets as nets  # the 2.5d denoiser: a U-Net, 5 slices in, 1 out

        net, cin, name = nets.build("unet", 5, 1, nets.DEFAULTS["unet"]), 5, "2.5d denoiser"
    else:
        from damselfly.engine.segmentation._model import load_model

        model = load_model(a.model)
        net, name = model.network("cpu"), Path(a.model).name
        cin = model.n_inputs * (model.context if model.input == "2.5d" else 1)
    net.eval()
    print(f"{name}: one forward pass of {a.batch} tile(s) of {a.tile}^2, {cin} input channels (bias, batch norm "
          f"and ReLU left out: they only add bytes)\n")
    report(conv_layers(net, torch.zeros(a.batch, cin, a.tile, a.tile)), a.batch * a.tile ** 2)


if __name__ == "__main__":
    main()
