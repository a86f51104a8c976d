# Porosity in a cast part: calibrate the grey values, train a U-Net on four painted slices, segment the
# whole scan with it, score it and the classic multi-Otsu baseline against the truth, measure the local
# thickness of the metal walls, count and measure the pores (one row per pore, their size distribution as a
# table and a histogram, a picture of them coloured by volume) and the porosity, save the
# model so that casting_apply.dfm can segment new scans with it, and render a snapshot and an orbit movie
# of the part with its pores for the report.
version 1

param scan = "data/casting.tif"  # override: --set scan=..., or --batch "scans/*.tif"
param painted_file = "data/casting_painted.tif"  # four slices painted air / metal / pore (0 = unpainted)
param truth_file = "data/casting_truth.tif"
param epochs = 15
param movie_seconds = 4

raw = load(scan)
cal = calibrate(raw, method="percentile", low=0.5, high=99.5)
painted = load_labels(painted_file)
model = train(cal, painted, arch="unet", epochs=epochs, steps=20, patch=64, seed=7)
save_model(model, "{scan.stem}.dfmodel")
seg = infer(model, cal)
otsu = threshold(cal, method="multiotsu", classes=3, names=["air", "pore", "metal"])
truth = load_labels(truth_file)
scores = evaluate(seg, truth)
otsu_scores = evaluate(otsu, truth)
save(seg, "{scan.stem}_seg.tif")
save(scores, "{scan.stem}_scores.csv")
save(otsu_scores, "{scan.stem}_otsu_scores.csv")
thick = local_thickness(seg, class="metal")
stats = thickness_stats(thick)
save(thick, "{scan.stem}_metal_thickness.tif")
save(stats, "{scan.stem}_metal_thickness.csv")
pores = label_objects(seg, class="pore")
pore_table = measure_objects(pores, image=cal)
save(pore_table, "{scan.stem}_pores.csv")
pore_sizes = histogram(pore_table, column="equivalent_diameter", path="{scan.stem}_pore_sizes.png")
save(pore_sizes, "{scan.stem}_pore_sizes.csv")
snapshot(pores, "{scan.stem}_pores_by_volume.png", color_by="volume", table=pore_table, azimuth=35, elevation=25, caption="{scan.stem} — pores by volume")
fractions = class_fractions(seg)
save(fractions, "{scan.stem}_class_fractions.csv")
snapshot(cal, "{scan.stem}_snapshot.png", labels=seg, azimuth=35, elevation=25, clip="y", caption="{scan.stem} — pores (red) in the metal")
render_movie(cal, "{scan.stem}_orbit.mp4", labels=seg, seconds=movie_seconds, fps=15, size=[960, 540], caption="{scan.stem} — pores and metal wall")
report("{scan.stem}_report.html", title="{scan.stem}: porosity and wall thickness")
