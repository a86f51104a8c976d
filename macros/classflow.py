"""What the checker knows of class names before anything runs: from a model file's document, a labels
file's ``classes=`` or its sidecar, and the actions that pass classes on (``train`` keeps its labels'
classes, ``infer`` its model's). A class argument naming none of them (``local_thickness(seg,
class="snow")`` on a model of air and ice) is then an error at its line, not a failure after ``infer``.
"""

from __future__ import annotations

from pathlib import Path

#: action -> the argument whose classes its result has
PASSES_ON = {"train": "labels", "compare_methods": "labels", "infer": "model", "sparse_labels": "labels",
             "crop": "obj", "interpolate_labels": "labels"}
#: class argument -> the arguments (in order) whose classes it names
NAMES_CLASSES_OF = {"class": ("labels", "model"), "classes": ("labels", "volume"), "mask_classes": ("mask",)}


def file_classes(action: str, path: Path, values: dict) -> list[str] | None:
    """The class names a loader's result will have, read without loading it (None: not known; a bad file
    is for the loader to report when it runs)."""
    from damselfly.engine.core.errors import DamselflyError
    from damselfly.engine.io._files import sidecar_classes
    from damselfly.engine.segmentation._model_files import read_document

    try:
        if action == "load_model":
            return [c["name"] for c in read_document(path)["classes"]]
        if action == "load_labels":
            if isinstance(values.get("classes"), list):
                return [str(c) for c in values["classes"]]
            stored = sidecar_classes(path)
            return None if stored is None else [c["name"] for c in stored]
    except (DamselflyError, OSError, KeyError, TypeError):
        return None
    return None


def merged(values: dict, names: list[str] | None) -> list[str] | None:
    """The class names of ``merge_classes(labels, ...)`` with ``values`` when the labels' ``names`` are
    known (None otherwise, or where the call is in error, which the checker reports at its arguments)."""
    from damselfly.engine.actions.cleanup import merged_classes

    into, merge, unlabelled = values.get("into"), values.get("classes", names), values.get("unlabelled")
    if names is None or not isinstance(into, str) or not isinstance(merge, list) \
            or not isinstance(unlabelled, (str, type(None))):
        return None
    try:
        return merged_classes(names, [str(m) for m in merge], into, unlabelled)[0]
    except ValueError:
        return None


def unknown_classes(pname: str, value, known: dict[str, list[str] | None]) -> tuple[str, list[str]] | None:
    """For a class argument ``pname`` with ``value``: (the argument whose classes it names, the names it
    gives that are not among them), or None when they are all there or nothing is known.
    ``known``: argument name -> its object's class names (None: unknown)."""
    if pname not in NAMES_CLASSES_OF or value is None:
        return None
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    for arg in NAMES_CLASSES_OF[pname]:
        classes = known.get(arg)
        if classes is not None:
            bad = [n for n in names if isinstance(n, str) and n not in classes]
            return (arg, bad) if bad else None
    return None
