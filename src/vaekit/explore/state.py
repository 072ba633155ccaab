"""What the explorer page shows of a run, computed once when it starts: the model, the encoded valid images, the
2-D plane through the latent space, the dimensions ordered by their KL, and the run's summary; and the answers
to the page's requests (decode, encode, an image, samples), each checked for size and value before the model
sees it.
"""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import load
from ..data.dataset import batches
from ..errors import VaekitError
from ..evaluate import kl_per_dimension
from ..models import describe
from ..models.likelihoods import BINARY
from ..rundir import CARD_FACTS_FILE, METRICS_FILE
from ..runs import load_split

MAX_POINTS = 2000  # valid images shown on the plane
MAX_BATCH = 1024  # latent points one request may decode
MAX_LATENT = 1e4  # |z| a request may ask for
MAX_SAMPLES = 256


class BadRequest(ValueError):
    """A request the explorer refuses (answered with 400 and this message)."""


def pixels_b64(images: torch.Tensor) -> str:
    """Images ``[N, C, H, W]`` in [0, 1] as base64 of their uint8 pixels (N, C, H, W order)."""
    u8 = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return base64.b64encode(u8.tobytes()).decode()


def _summary(run_dir: Path, cfg, model) -> dict[str, Any]:
    rows = []
    try:
        rows = [json.loads(line) for line in (run_dir / METRICS_FILE).read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        pass
    best = max((r["valid_elbo"] for r in rows), default=None)
    nll = None
    try:
        evals = json.loads((run_dir / CARD_FACTS_FILE).read_text()).get("evaluations", [])
        valid = [e for e in evals if e.get("split") == "valid" and e.get("prior") in (None, "trained")
                 and e.get("checkpoint") == "best"]
        if valid:
            e = max(valid, key=lambda e: e["iw_samples"])
            nll = {"nll": e["nll"], "iw_samples": e["iw_samples"]}
    except (OSError, ValueError, AttributeError):
        pass
    return {"run": str(run_dir), "data": cfg.describe_data(), "model": describe(cfg.model, cfg.data.image_shape,
                                                                               cfg.data.classes, model),
            "epochs": len(rows), "valid_elbo": best, "valid_nll": nll}


class Explorer:
    """A run opened for exploring. Thread-safe: the model answers one request at a time."""

    def __init__(self, run_dir: str | Path, dims: tuple[int, int] | None = None, device: str = "cpu",
                 max_points: int = MAX_POINTS):
        self.run_dir = Path(run_dir)
        self.model = load(self.run_dir, device=device)
        self.cfg = self.model.config
        self.lock = threading.Lock()
        m = self.model
        self.conditional = bool(getattr(m, "conditional", False))
        self.classes = int(m.classes) if self.conditional else None
        ds = load_split(self.cfg, "valid", m.image_shape)
        if len(ds) > max_points:  # an even spread over the split
            keep = torch.zeros(len(ds), dtype=torch.bool)
            keep[torch.linspace(0, len(ds) - 1, max_points).long()] = True
            ds = ds.subset(keep)
        self.data = ds
        y = ds.labels if self.conditional else None
        with torch.inference_mode():
            q = [m.encode(b.x, b.y) for b in batches(ds.x, y, 500)]
            self.mu = torch.cat([p.mu for p in q]).float()
            self.logvar = torch.cat([p.logvar for p in q]).float()
            self.kl = kl_per_dimension(m, ds.x, y=y)
        self.order = [int(i) for i in torch.argsort(self.kl, descending=True)]
        self.center, self.basis, self.plane = self._plane(dims)
        self.summary = _summary(self.run_dir, self.cfg, m)

    def _plane(self, dims):
        """The page's plane: two latent dimensions (the model's two, a chosen pair, or for L = 1 the one), or the
        PCA plane of the posterior means; its origin ``[L]`` and orthonormal basis ``[L, 2]``."""
        L = self.model.latent_dim
        if dims is not None:
            bad = [d for d in dims if not 0 <= d < L]
            if bad or dims[0] == dims[1]:
                raise VaekitError(f"--dims takes two different latent dimensions 0..{L - 1}, got {dims[0]} {dims[1]}")
        if L <= 2 or dims is not None:
            i, j = dims if dims is not None else (0, 1 if L > 1 else 0)
            basis = torch.zeros(L, 2)
            basis[i, 0] = 1.0
            if L > 1:
                basis[j, 1] = 1.0
            axes = [f"z[{i}]", f"z[{j}]" if L > 1 else "(none)"]
            return torch.zeros(L), basis, {"kind": "dims", "dims": [i, j], "axes": axes}
        center = self.mu.mean(0)
        _, s, v = torch.linalg.svd(self.mu - center, full_matrices=False)
        basis = v[:2].T.contiguous()
        share = (s[:2] ** 2 / (s**2).sum()).tolist()
        return center, basis, {"kind": "pca", "axes": [f"PC 1 ({share[0]:.0%} of the means' variance)",
                                                         f"PC 2 ({share[1]:.0%})"]}

    def info(self) -> dict[str, Any]:
        m = self.model
        uv_t = (self.mu - self.center) @ self.basis
        uv = uv_t.tolist()
        # the plane shows where the images are: 99% of them inside, and at least the prior's +-2.5
        extent = float(max(2.5, float(torch.quantile(uv_t.abs().flatten(), 0.99)) * 1.25)) if len(uv) else 3.0
        ranges = [float(max(3.0, float(self.mu[:, d].abs().max()) * 1.2)) for d in range(m.latent_dim)]
        names = list(self.data.class_names) if self.data.class_names else None
        return {
            "summary": self.summary, "latent_dim": m.latent_dim, "image_shape": list(m.image_shape),
            "conditional": self.conditional, "classes": self.classes, "class_names": names,
            "plane": {**self.plane, "center": self.center.tolist(), "basis": self.basis.tolist(), "extent": extent},
            "kl": self.kl.tolist(), "order": self.order, "active": [bool(k > 0.01) for k in self.kl.tolist()],
            "slider_range": ranges,
            "points": {"uv": uv, "labels": self.data.labels.tolist() if self.data.labels is not None else None,
                       "index": self.data.positions().tolist()},
            "prior_mean": self._prior_mean(),
            "max_batch": MAX_BATCH,
        }

    def _prior_mean(self) -> list[float]:
        with torch.inference_mode():
            p = self.model.prior_given(torch.zeros(1, dtype=torch.long) if self.conditional else None)
            mean = p.mean.reshape(-1, self.model.latent_dim)[0]
        return mean.float().tolist()

    # ---- requests -------------------------------------------------------------------------------------------
    def _labels(self, body: dict, n: int) -> torch.Tensor | None:
        if not self.conditional:
            return None
        y = body.get("y", 0)
        ys = y if isinstance(y, list) else [y] * n
        if len(ys) != n or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < self.classes
                                   for v in ys):
            raise BadRequest(f"y must be a label 0..{self.classes - 1} (or one per point)")
        return torch.tensor(ys, dtype=torch.long)

    def decode(self, body: dict) -> dict[str, Any]:
        z = body.get("z")
        L = self.model.latent_dim
        if not isinstance(z, list) or not 1 <= len(z) <= MAX_BATCH:
            raise BadRequest(f"z must be a list of 1 to {MAX_BATCH} latent points")
        if not all(isinstance(p, list) and len(p) == L for p in z):
            raise BadRequest(f"every point of z must be a list of {L} numbers")
        try:
            zt = torch.tensor(z, dtype=torch.float32)
        except (TypeError, ValueError):
            raise BadRequest("z must hold numbers only") from None
        if not torch.isfinite(zt).all() or zt.abs().max() > MAX_LATENT:
            raise BadRequest(f"z must be finite and within ±{MAX_LATENT:g}")
        y = self._labels(body, len(z))
        with self.lock, torch.inference_mode():
            images = self.model.images(self.model.decode(zt, y).mean)
        return {"n": len(z), "pixels": pixels_b64(images)}

    def encode(self, body: dict) -> dict[str, Any]:
        """An image the page drew (``x``: C*H*W numbers in [0, 1]), prepared as the run's images are (binary pixels
        for a model of binary pixels), encoded; its posterior, its place on the plane and its reconstruction."""
        c, h, w = self.model.image_shape
        x = body.get("x")
        if not isinstance(x, list) or len(x) != c * h * w:
            raise BadRequest(f"x must be a list of {c * h * w} pixel values (C x H x W)")
        try:
            xt = torch.tensor(x, dtype=torch.float32).reshape(1, c, h, w)
        except (TypeError, ValueError):
            raise BadRequest("x must hold numbers only") from None
        if not torch.isfinite(xt).all() or xt.min() < 0 or xt.max() > 1:
            raise BadRequest("x must hold pixel values in [0, 1]")
        if getattr(self.model.decoder.likelihood, "accepts", None) == BINARY:
            xt = (xt >= 0.5).float()  # the run's images were binary
        y = self._labels(body, 1)
        return self._posterior(xt, y)

    def _posterior(self, x: torch.Tensor, y) -> dict[str, Any]:
        with self.lock, torch.inference_mode():
            q = self.model.encode(x, y)
            recon = self.model.images(self.model.decode(q.mu, y).mean)
        mu, logvar = q.mu[0].float(), q.logvar[0].float()
        cov = self.basis.T @ torch.diag(logvar.exp()) @ self.basis  # q's covariance seen on the plane
        return {"mean": mu.tolist(), "logvar": logvar.tolist(), "uv": ((mu - self.center) @ self.basis).tolist(),
                "cov_uv": cov.tolist(), "input": pixels_b64(x), "reconstruction": pixels_b64(recon)}

    def image(self, query: dict) -> dict[str, Any]:
        """The valid image at position ``i`` of the points (a number, never a path): it, its reconstruction and
        its posterior."""
        try:
            i = int(query.get("i", [""])[0])
        except ValueError:
            raise BadRequest("i must be a whole number") from None
        if not 0 <= i < len(self.data):
            raise BadRequest(f"i must be 0..{len(self.data) - 1}")
        x = self.data.x[i : i + 1]
        x = x.float() / 255 if x.dtype == torch.uint8 else x
        y = self.data.labels[i : i + 1] if self.conditional else None
        out = self._posterior(x, y)
        out["label"] = int(self.data.labels[i]) if self.data.labels is not None else None
        out["index"] = int(self.data.positions()[i])
        return out

    def sample(self, body: dict) -> dict[str, Any]:
        n = body.get("n", 16)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_SAMPLES:
            raise BadRequest(f"n must be a whole number 1..{MAX_SAMPLES}")
        y = self._labels(body, n)
        seed = body.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**31:
            raise BadRequest("seed must be a whole number >= 0")
        with self.lock, torch.inference_mode():
            state = torch.random.get_rng_state()
            torch.manual_seed(seed)
            try:
                p = self.model.prior_given(y)
                z = p.sample(() if y is not None and getattr(self.model.prior, "conditional", False) else (n,))
                images = self.model.images(self.model.decode(z, y).mean)
            finally:
                torch.random.set_rng_state(state)
        return {"n": n, "z": z.float().tolist(), "pixels": pixels_b64(images)}


__all__ = ["BadRequest", "Explorer", "MAX_BATCH", "pixels_b64"]
