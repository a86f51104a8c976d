"""Labels stored with their image, as the NGFF spec has it: ``image.zarr/labels/<name>``.

An OME-Zarr image may hold label images in its ``labels/`` group; the group's attributes list them
(``{"labels": ["cells", ...]}``) and each label image names its image (``image-label.source.image``,
``"../../"``). napari, ome-zarr-py and the NGFF validators open them together with the image.

Saving labels to ``scan.zarr/labels/pores`` adds them to the OME-Zarr image ``scan.zarr``, which must
exist and have the labels' shape. The run's rules on outputs still hold: an image that is an *input* of
the run lies in an input folder and is never written into; save the image as an output first.

Examples
--------
>>> from pathlib import Path
>>> image_of_label_path(Path("out/scan.zarr/labels/pores")).as_posix()
'out/scan.zarr'
>>> image_of_label_path(Path("out/scan.zarr")) is None
True
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core._atomic import write_text
from ..core.errors import InputError, ParameterError


def image_of_label_path(path: Path) -> Path | None:
    """The OME-Zarr image a path ``<image>.zarr/labels/<name>`` puts labels into, else ``None``."""
    path = Path(path)
    if path.parent.name == "labels" and path.parent.parent.name.lower().endswith(".zarr"):
        return path.parent.parent
    return None


def check_label_home(path: Path, vol) -> None:
    """Check that ``vol`` may be saved at ``path``, into the image :func:`image_of_label_path` names.

    Raises
    ------
    ParameterError
        ``vol`` is not labels, the image is missing or not an OME-Zarr image, or its shape differs.
    """
    from ..core.data import Labels

    image = image_of_label_path(path)
    if not isinstance(vol, Labels):
        raise ParameterError(f"only labels are saved into an image's labels/ group, not a "
                             f"{type(vol).__name__.lower()}: {path}")
    attrs = _read_attrs(image / ".zattrs")
    shape = _level0_shape(image, attrs) if attrs is not None else None
    if shape is None:
        raise ParameterError(f"labels saved to {path} go into the OME-Zarr image {image}, which does not "
                             "exist or is no OME-Zarr image: save the image there first")
    if tuple(shape) != tuple(vol.shape):
        raise ParameterError(f"labels of shape {tuple(vol.shape)} cannot go into the image {image} "
                             f"of shape {tuple(shape)}")


def register_label(image: Path, name: str) -> None:
    """List ``name`` in ``image``'s ``labels/`` group (created if missing), atomically."""
    group = image / "labels"
    if not (group / ".zgroup").exists():
        write_text(group / ".zgroup", json.dumps({"zarr_format": 2}) + "\n")
    attrs = _read_attrs(group / ".zattrs") or {}
    names = [n for n in attrs.get("labels", []) if n != name] + [name]
    write_text(group / ".zattrs", json.dumps({**attrs, "labels": names}, indent=2) + "\n")


def _read_attrs(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        attrs = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"unreadable Zarr attributes ({e})", path) from e
    return attrs if isinstance(attrs, dict) else None


def _level0_shape(image: Path, attrs: dict) -> list[int] | None:
    ms = attrs.get("multiscales")
    try:
        level0 = ms[0]["datasets"][0]["path"]
        meta = json.loads((image / level0 / ".zarray").read_text(encoding="utf-8"))
        return list(meta["shape"])[-3:]
    except (TypeError, KeyError, IndexError, OSError, ValueError):
        return None
