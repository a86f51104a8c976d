# Denoise a noisy scan with a network trained on the scan itself (Noise2Void: no clean data, no labels),
# then segment the scan and its denoised version together (two input channels) from a few painted slices.
# This is what the recorder writes when a person does it in the app: Enhance > Train denoiser,
# Enhance > Enhance, then Segment > Train and Infer with both images chosen.
version 1

param scan = "data/casting.tif"  # override: --set scan=..., or --batch "scans/*.tif"
param painted_file = "data/casting_painted.tif"
param denoise_epochs = 20
param epochs = 15

raw = load(scan)
cal = calibrate(raw, method="percentile", low=0.5, high=99.5)
denoiser = train_denoiser(cal, epochs=denoise_epochs)
save_model(denoiser, "{scan.stem}_denoiser.dfmodel")
clean = enhance(denoiser, cal)
save(clean, "{scan.stem}_denoised.tif")
painted = load_labels(painted_file)
# Both channels: the denoised scan shows the shapes, the noisy one the small features that denoising
# softens. With train's defaults the two channels beat the noisy scan alone on the noisy phantom (three
# noise draws) and on real nuclei under two noise levels (benchmarks/README.md, Enhancement, row 4).
model = train([cal, clean], painted, arch="unet", epochs=epochs, steps=20, patch=64, seed=7)
save_model(model, "{scan.stem}_seg.dfmodel")
seg = infer(model, [cal, clean])
save(seg, "{scan.stem}_seg.tif")
report("{scan.stem}_report.html")
