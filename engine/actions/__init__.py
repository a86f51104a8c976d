"""The built-in actions. Importing this package registers them all."""

from . import io_actions, measure, processing, render, segmentation  # noqa: F401
