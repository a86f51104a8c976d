"""File formats: every scan, label and table Damselfly reads or writes.

- ``_files``: the public functions, which choose a format by the file name (a table of formats there).
- ``_formats``: TIFF (ImageJ hyperstacks, folders of slices), NRRD, NIfTI.
- ``_containers``: OME-Zarr / Zarr, MRC, MetaImage, raw; ``_zarr_store``: Zarr read only inside its folder.
- ``_hdf5``: HDF5; ``_dicom``: DICOM series.
"""

from ._files import (
    atomic_path,
    content_kind,
    file_kind,
    file_sha256,
    overview,
    read_labels,
    read_table,
    read_volume,
    sidecar,
    stem,
    write_table,
    write_text,
    write_volume,
)

__all__ = ["atomic_path", "content_kind", "file_kind", "file_sha256", "overview", "read_labels", "read_table",
           "read_volume", "sidecar", "stem", "write_table", "write_text", "write_volume"]
