# Segment new scans with a saved porosity model, unattended, and measure their pores and porosity; each
# scan gets a report, and a batch gets results/summary.html (every scan's numbers side by side):
#   damselfly run examples/casting_apply.dfm --batch "scans/*.tif" --out results/
version 1

param scan = "data/casting.tif"
param model_file = "models/casting.dfmodel"  # made by casting_porosity.dfm (save_model)

raw = load(scan)
cal = calibrate(raw, method="percentile", low=0.5, high=99.5)
model = load_model(model_file)
seg = infer(model, cal)
save(seg, "{scan.stem}_seg.tif")
pores = label_objects(seg, class="pore")
pore_table = measure_objects(pores, image=cal)
save(pore_table, "{scan.stem}_pores.csv")
fractions = class_fractions(seg)
save(fractions, "{scan.stem}_class_fractions.csv")
report("{scan.stem}_report.html")
