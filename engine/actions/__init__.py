"""The built-in actions: :data:`ALL` lists them; :mod:`damselfly.engine.builtin` registers that list.

Importing an action module registers nothing: an action is described by its decorator and becomes
runnable only when a :class:`~damselfly.engine.registry.Registry` is given it.
"""

from .cleanup import merge_classes, morphology
from .compare import compare_methods, comparison_table
from .enhancement import enhance, train_denoiser, train_restoration
from .interpolation import interpolate_labels
from .io_actions import load, load_labels, save
from .measure import local_thickness, thickness_stats
from .mesh import export_mesh
from .objects import class_fractions, filter_objects, label_objects, measure_objects, separate_objects
from .plots import histogram
from .processing import calibrate, crop, evaluate, threshold
from .render import render_movie, snapshot
from .report import report
from .segmentation import (
    infer,
    infer_probabilities,
    load_model,
    save_model,
    sparse_labels,
    train,
    training_history,
    uncertainty,
)

#: Every built-in action, in menu order within each menu.
ALL = [
    load, load_labels, save, load_model, save_model,
    calibrate, crop,
    threshold, train, compare_methods, infer, infer_probabilities, uncertainty, sparse_labels, merge_classes,
    interpolate_labels,
    local_thickness, thickness_stats, label_objects, separate_objects, filter_objects, morphology, measure_objects, histogram, class_fractions, evaluate, training_history, comparison_table,
    train_denoiser, train_restoration, enhance,
    snapshot, render_movie, export_mesh, report,
]
