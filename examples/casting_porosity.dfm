# Porosity in a cast part: calibrate the grey values, segment air, pores and metal with multi-Otsu
# thresholds (the classic baseline), and score the result against the ground truth.
version 1

param scan = "data/casting.tif"  # override: --set scan=..., or --batch "scans/*.tif"
param truth = "data/casting_truth.tif"

raw = load(scan)
cal = calibrate(raw, method="percentile", low=0.5, high=99.5)
seg = threshold(cal, method="multiotsu", classes=3, names=["air", "pore", "metal"])
labels = load_labels(truth)
scores = evaluate(seg, labels)
save(cal, "{scan.stem}_calibrated.tif")
save(seg, "{scan.stem}_otsu.tif")
save(scores, "{scan.stem}_scores.csv")
