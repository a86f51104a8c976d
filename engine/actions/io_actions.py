"""Actions that read and write files: ``load``, ``load_labels``, ``save``."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..core import progress
from ..core.context import RunContext
from ..core.data import Labels, Table, Volume
from ..core.errors import ParameterError
from ..core.volume_ops import nan_count, require_finite
from ..io import _files as io
from ..registry import InputPath, OutputPath, action

#: ``load(mmap=...)`` as ``read_volume`` takes it.
MMAP_MODES: dict[str, bool | str] = {"auto": "auto", "yes": True, "no": False}


@action("load", result="raw", category="File", title="Open volume…", toolbar=1)
def load(path: InputPath, spacing: list[float] | None = None,
         mmap: Literal["auto", "yes", "no"] = "auto",
         nan: Literal["error", "zero"] = "error", unit: str | None = None, dataset: str | None = None,
         level: int = 0, series: str | None = None) -> Volume:
    """Load a scanned volume.

    Reads a multi-page TIFF, a folder of TIFF slices, ``.npy``, NRRD, NIfTI, OME-Zarr or Zarr, HDF5, MRC,
    MetaImage (``.mhd`` + raw) or a folder of DICOM slices. Spacing, origin and unit come from the file
    where the format stores them. Zarr, HDF5 and MRC data stay on disk and are read slab by slab.

    Parameters
    ----------
    path : path
        The file or folder, relative to the macro's folder.
    spacing : list of float, optional
        Voxel size ``[z, y, x]``; overrides the file's.
    mmap : {"auto", "yes", "no"}
        Memory-map the file instead of reading it (uncompressed TIFF, NPY, NIfTI); ``auto`` maps files
        over 1 GiB.
    nan : {"error", "zero"}
        What to do with NaN or infinite voxels: stop with an error naming the file, or set them to 0.
    unit : str, optional
        The unit of ``spacing`` (``"mm"``, ``"um"``, ``"nm"``, ...). A spacing given without a unit, for a
        file that has none, has the unit "unknown" and scale bars say so.
    dataset : str, optional
        HDF5: the dataset inside the file (default: the only 3-D one).
    level : int
        OME-Zarr: the level of the pyramid (0 is full resolution).
    series : str, optional
        DICOM: the series to read (its SeriesInstanceUID or SeriesNumber) from a folder holding several.

    Returns
    -------
    Volume
    """
    vol = io.read_volume(path, spacing=spacing, mmap=MMAP_MODES[mmap],
                         unit=unit, dataset=dataset, level=level, series=series)
    if nan_count(vol):
        if nan == "error":
            require_finite(vol)
        vol = vol.with_data(np.nan_to_num(np.asarray(vol.data), nan=0.0, posinf=0.0, neginf=0.0))
    return vol


@action("load_labels", result="labels", category="File", title="Open labels…")
def load_labels(path: InputPath, classes: list[str] | None = None,
                spacing: list[float] | None = None) -> Labels:
    """Load a label volume (multi-ROI) with its class names and colours.

    Parameters
    ----------
    path : path
        A labels file (any volume format); class names and colours come from its ``.json`` sidecar.
    classes : list of str, optional
        Class names for values 1..K, overriding the sidecar.
    spacing : list of float, optional
        Voxel size ``[z, y, x]``; overrides the file's.

    Returns
    -------
    Labels
    """
    return io.read_labels(path, classes=classes, spacing=spacing)


@action("save", category="File", title="Save…", roles={"obj": "newest"})
def save(obj: Volume | Labels | Table, path: OutputPath, *, ctx: RunContext) -> None:
    """Save a volume, labels or table; the format follows the file name.

    Volumes and labels: ``.tif`` (ImageJ-compatible, spacing kept), ``.npy``, ``.nrrd``, ``.nii.gz``,
    ``.zarr`` (OME-Zarr with its pyramid), ``.h5``, ``.mrc``, ``.mhd``, or a name without suffix for a
    folder of TIFF slices; labels also write a ``.json`` sidecar with their classes. Labels saved to
    ``<image>.zarr/labels/<name>`` join an OME-Zarr image this run saved, as NGFF label images listed in
    its ``labels/`` group (napari and ome-zarr open them with the image). Tables: ``.csv``. Writes are
    atomic.

    Parameters
    ----------
    obj : Volume, Labels or Table
        What to save.
    path : path
        Where, relative to the run's output folder.
    """
    overwrite = ctx.may_replace(path)
    task = progress.task(f"Saving {path}", total=1)
    if isinstance(obj, Table):
        if io.file_kind(path) != "csv":
            raise ParameterError(f"a table is saved as .csv, not {path}")
        io.write_table(obj, path, overwrite=overwrite)
    else:
        if io.file_kind(path) == "csv":
            raise ParameterError(f"a volume cannot be saved as CSV: {path}")
        io.write_volume(obj, path, overwrite=overwrite)
    task.finish()
