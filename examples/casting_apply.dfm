# Segment new scans with a saved porosity model, unattended:
#   damselfly run examples/casting_apply.dfm --batch "scans/*.tif" --out results/
version 1

param scan = "data/casting.tif"
param model_file = "models/casting.dfmodel"  # made by casting_porosity.dfm (save_model)

raw = load(scan)
cal = calibrate(raw, method="percentile", low=0.5, high=99.5)
model = load_model(model_file)
seg = infer(model, cal)
save(seg, "{scan.stem}_seg.tif")
