"""A portable model: the encoder and the decoder as ONNX graphs with a dynamic batch dimension, checked on export
against PyTorch with onnxruntime.

* ``encoder.onnx``: ``x`` images ``[B, C, H, W]`` float32 in [0, 1] (and ``y`` int64 labels ``[B]`` for a
  conditional model) -> ``mean`` and ``logvar`` ``[B, L]`` of q(z|x).
* ``decoder.onnx``: ``z`` ``[B, L]`` (and ``y``) -> ``mean``, the mean image of p(x|z) ``[B, C, H, W]``, and the
  likelihood's parameters by their names (``logits`` for a Bernoulli, ``loc`` and ``log_scale`` for the discretised
  logistic, ...) as rows of pixels ``[B, D]``.

Needs the ``export`` extra: ``pip install 'vaekit[export]'`` (onnx, onnxruntime, onnxscript).
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from .errors import VaekitError

FORMATS = ("onnx",)
TOLERANCE = 1e-4  # max abs difference from PyTorch above which the export fails
EXTRA = "pip install 'vaekit[export]'"


def _require():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise VaekitError(f"exporting to ONNX needs onnx, onnxruntime and onnxscript ({e.name} is missing): "
                          f"{EXTRA}") from None


class EncoderGraph(nn.Module):
    """q(z|x) as plain tensors: ``(x[, y]) -> (mean, logvar)``."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        q = self.model.encode(x, y)
        return q.mu, q.logvar


def _param_names(px) -> list[str]:
    """The tensors a likelihood's distribution holds (its parameters), by their attribute names."""
    return [k for k, v in vars(px).items() if torch.is_tensor(v)]


class DecoderGraph(nn.Module):
    """p(x|z) as plain tensors: ``(z[, y]) -> (mean image, *likelihood parameters)``."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None):
        px = self.model.decode(z, y)
        return (self.model.images(px.mean), *(getattr(px, k) for k in _param_names(px)))


def _inputs(model, n: int):
    c, h, w = model.image_shape
    gen = torch.Generator().manual_seed(0)
    x = torch.rand((n, c, h, w), generator=gen)
    z = torch.randn((n, model.latent_dim), generator=gen)
    y = torch.arange(n) % model.classes if getattr(model, "conditional", False) else None
    return x, z, y


def _export_one(module: nn.Module, args: tuple, names_in: list[str], names_out: list[str], path: Path) -> None:
    batch = torch.export.Dim("batch", min=1)
    shapes = tuple({0: batch} for _ in args)
    quiet = logging.getLogger("torch.onnx")  # its notes on operators of other libraries are not the user's
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, args, dynamo=True, dynamic_shapes=shapes, input_names=names_in,
                                        output_names=names_out, verbose=False, report=False)
    finally:
        quiet.setLevel(level)
    program.save(str(path))


def _check(path: Path, module: nn.Module, args: tuple, names_in: list[str]) -> float:
    """Max abs difference between onnxruntime and PyTorch on ``args`` (and on a batch of another size)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for a in (args, tuple(t[:3] for t in args)):
        with torch.inference_mode():
            want = module(*a)
        got = sess.run(None, {n: t.numpy() for n, t in zip(names_in, a)})
        for g, w in zip(got, want):
            if tuple(g.shape) != tuple(w.shape):
                raise VaekitError(f"{path.name}: onnxruntime gave shape {tuple(g.shape)}, PyTorch {tuple(w.shape)}")
            worst = max(worst, float((torch.from_numpy(g) - w.float()).abs().max()))
    return worst


def export_onnx(model, out_dir: str | Path, batch: int = 8, tolerance: float = TOLERANCE) -> dict:
    """Write ``encoder.onnx``, ``decoder.onnx`` and ``onnx.json`` (inputs, outputs, the differences measured) into
    ``out_dir``; raises when onnxruntime differs from PyTorch by more than ``tolerance`` anywhere."""
    _require()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise VaekitError(f"--out '{out}' is a file; name a folder to write the graphs into")
    out.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    x, z, y = _inputs(model, batch)
    cond = y is not None
    with torch.inference_mode():
        params = _param_names(model.decode(z, y))
    enc_in, dec_in = (["x", "y"], ["z", "y"]) if cond else (["x"], ["z"])
    parts = {"encoder": (EncoderGraph(model), (x, y) if cond else (x,), enc_in, ["mean", "logvar"]),
             "decoder": (DecoderGraph(model), (z, y) if cond else (z,), dec_in, ["mean", *params])}
    info = {"tolerance": tolerance, "image_shape": list(model.image_shape), "latent_dim": model.latent_dim,
            "classes": model.classes if cond else None, "graphs": {}}
    for name, (module, args, names_in, names_out) in parts.items():
        path = out / f"{name}.onnx"
        try:
            _export_one(module, args, names_in, names_out, path)
        except VaekitError:
            raise
        except Exception as e:  # the exporter's own errors: one line, what to do
            raise VaekitError(f"could not export the {name} to ONNX ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200]}); run with --debug for the exporter's trace") from None
        diff = _check(path, module, args, names_in)
        info["graphs"][name] = {"file": path.name, "inputs": names_in, "outputs": names_out, "max_abs_diff": diff}
        if not diff <= tolerance:
            raise VaekitError(f"{path.name}: onnxruntime differs from PyTorch by {diff:.3g} (more than {tolerance:g})")
    (out / "onnx.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


__all__ = ["DecoderGraph", "EncoderGraph", "FORMATS", "TOLERANCE", "export_onnx"]
