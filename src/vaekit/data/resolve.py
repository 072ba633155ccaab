"""What a data configuration is, found once and then only read: the spec of a named set, or of your folder
or array (scanned while something about it is unresolved; a saved run keeps what the scan found), the
model defaults such images get, and the words every result uses to say which data variant it is on.

These take a :class:`~vaekit.config.DataConfig` (or a run's config) and never import it: the config
module calls them, not the other way round.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .datasets import DATASETS, SOURCES, DatasetSpec

SIZED_DATA = ("folder", "array", "shapes")  # data that --image-size resizes


def resolve_source(d):
    """``d`` with what a scan of your folder or array finds (image shape, levels, classes, digest), when anything
    of it is unresolved; a named set is returned as it is."""
    if d.name in SOURCES and (d.image_shape is None or d.levels is None or d.digest is None):
        from .user import check_unchanged, source_spec

        src = source_spec(d)
        check_unchanged(d, src)  # a digest given with unresolved fields must still match
        d = dataclasses.replace(d, image_shape=d.image_shape or src.image_shape, levels=d.levels or src.levels,
                                classes=len(src.class_names) if src.class_names else None,
                                class_names=src.class_names, digest=src.digest, n_files=src.n_files,
                                layout=d.layout or src.layout)
    return d


def spec_of(d) -> DatasetSpec:
    """The spec of the data ``d`` names: a named set's, or one made from what was resolved of your images."""
    if d.name in DATASETS:
        return DATASETS[d.name]
    where = d.data_dir if d.name == "folder" else d.data_file
    return DatasetSpec(d.name, None, d.image_shape, d.levels, "colour" if d.image_shape[0] == 3 else "grayscale",
                       f"images from {where}", d.class_names)


def image_defaults(d, model: dict[str, Any]) -> dict[str, Any]:
    """The model settings not given, for images of any size (your folder or array, shapes): the conv networks,
    and the discretised logistic over 8-bit levels (the Bernoulli for binary arrays), so that nobody binarises
    their photos by hand."""
    if d.name not in SIZED_DATA or ("arch" in model and "likelihood" in model):
        return model
    model = dict(model)
    model.setdefault("arch", "conv")
    if "likelihood" not in model:
        levels = d.levels
        if levels is None and d.name in SOURCES:
            from .user import source_spec

            levels = source_spec(d).levels
        model["likelihood"] = "bernoulli" if levels == 2 else "logistic"
    return model


def short_data(cfg) -> str:
    """A few words for figure titles: the data set and its variant."""
    d = cfg.data
    deq = ", dequantised" if d.dequantize == "uniform" else ""
    if spec_of(d).binary:
        return f"{d.name} ({'static binarization' if d.name in DATASETS else 'binary'}{deq})"
    return {"none": f"{d.name} ({spec_of(d).variant}{deq})", "dynamic": f"{d.name} (dynamic binarization{deq})",
            "static": f"{d.name} (static binarization, fixed seed{deq})"}[d.binarize]


def describe_data(cfg) -> str:
    """Which data and which variant of it (binarization, dequantisation), as every result says."""
    d, spec = cfg.data, spec_of(cfg.data)
    deq = (f"; uniformly dequantised over its {cfg.pixel_levels} levels, fresh noise each epoch, one fixed "
           "sample for valid/test") if d.dequantize == "uniform" else ""
    name = d.name
    if name in SOURCES:
        name = f"{name} '{d.data_dir if name == 'folder' else d.data_file}'"
    if d.name in SIZED_DATA:
        name += f", {'x'.join(map(str, d.image_shape or ()))}" + (" (resized and centre-cut)" if d.image_size else "")
    if d.name == "array" and d.layout:
        name += f", read as {d.layout}"
    if spec.binary:
        return f"{name} ({spec.variant}{deq})"
    levels = f"{spec.levels} levels" if spec.levels != 256 else "8-bit"
    return {
        "none": f"{name} ({spec.variant}, {levels}, not binarized{deq})",
        "dynamic": f"{name} (dynamically binarized: a new Bernoulli sample each epoch; valid/test use one fixed "
                   f"sample{deq})",
        "static": f"{name} (statically binarized once with a fixed seed{deq})",
    }[d.binarize]


__all__ = ["SIZED_DATA", "describe_data", "image_defaults", "resolve_source", "short_data", "spec_of"]
