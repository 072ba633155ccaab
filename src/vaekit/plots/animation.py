"""The training animation: one small frame per snapshot, assembled into ``training.gif``.

A frame is the decoded manifold grid for a 2-D latent, or decoded fixed latent
points (the same z every frame) for more dimensions, labelled with the epoch and
the valid ELBO. Frames are drawn with Pillow (no matplotlib: a frame costs a few
milliseconds) and kept as ``frames/epoch_NNNN.png`` so that a resumed run's
animation still starts at epoch 1.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..files import atomic_write_bytes
from ..rundir import FRAMES_DIR, frame_path
from .grids import image_grid, manifold_images

_FRAME_RE = re.compile(r"epoch_(\d+)\.png$")


@torch.no_grad()
def snapshot_grid(model, n: int = 12, seed: int = 0) -> np.ndarray:
    """The picture of the model a frame shows, as a ``[H, W]`` (grey) or ``[H, W, 3]`` (colour) array in [0, 1].
    A conditional model's frame decodes the same z for each label, one row per label."""
    anchor = next(model.parameters())
    if getattr(model, "conditional", False):
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(1, n, model.latent_dim, generator=g).expand(model.classes, n, -1).reshape(-1, model.latent_dim)
        y = torch.arange(model.classes, device=anchor.device).repeat_interleave(n)
        return image_grid(model.decode(z.to(anchor), y).mean, model.image_shape, nrow=n)
    if model.latent_dim == 2:
        images, _ = manifold_images(model, n=n, dims=(0, 1))
        return image_grid(images, model.image_shape, nrow=n)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n * n, model.latent_dim, generator=g).to(anchor)
    return image_grid(model.decode(z).mean, model.image_shape, nrow=n)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        return ImageFont.load_default()


GREY_LEVELS = 16  # GIFs of smooth greys compress badly; 16 levels made them ~4x smaller with no visible loss


def render_frame(grid: np.ndarray, label: str, width: int = 360) -> Image.Image:
    """A frame: the grid (grey: dark digits on white; colour: as it is) under a one-line label."""
    if grid.ndim == 3:
        img = Image.fromarray(np.round(grid * 255).astype(np.uint8), mode="RGB")
        mode, white, black = "RGB", (255, 255, 255), (0, 0, 0)
    else:
        levels = np.round((1 - grid) * (GREY_LEVELS - 1)) * (255 // (GREY_LEVELS - 1))
        img = Image.fromarray(levels.astype(np.uint8), mode="L")
        mode, white, black = "L", 255, 0
    scale = max(1, round(width / img.width))
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    header, font = 24, _font(14)
    text_width = int(ImageDraw.Draw(Image.new(mode, (1, 1))).textlength(label, font=font)) + 10
    frame = Image.new(mode, (max(img.width, text_width), img.height + header), white)  # the label never cut off
    frame.paste(img, ((frame.width - img.width) // 2, header))
    ImageDraw.Draw(frame).text((5, 4), label, fill=black, font=font)
    return frame


def frame_label(epoch: int, valid_elbo: float | None, latent_dim: int, conditional: bool = False) -> str:
    what = "fixed z, a row per label" if conditional else "latent grid" if latent_dim == 2 else "fixed z"
    elbo = f"valid ELBO {valid_elbo:.2f} nats" if valid_elbo is not None else "untrained"
    return f"epoch {epoch}  |  {elbo}  |  {what}"


def save_frame(run_dir: str | Path, model, epoch: int, valid_elbo: float | None) -> Path:
    """Draw and atomically write the frame for ``epoch`` into ``RUN_DIR/frames/``."""
    frame = render_frame(snapshot_grid(model),
                         frame_label(epoch, valid_elbo, model.latent_dim, getattr(model, "conditional", False)))
    buf = io.BytesIO()
    frame.save(buf, format="PNG", optimize=False, compress_level=1)
    path = frame_path(run_dir, epoch)
    atomic_write_bytes(path, buf.getvalue())
    return path


def frame_paths(run_dir: str | Path, upto_epoch: int | None = None) -> list[Path]:
    """The saved frames in epoch order (only up to ``upto_epoch`` if given)."""
    folder = Path(run_dir) / FRAMES_DIR
    found = []
    for p in folder.glob("epoch_*.png") if folder.is_dir() else []:
        m = _FRAME_RE.search(p.name)
        if m and (upto_epoch is None or int(m.group(1)) <= upto_epoch):
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def write_gif(frames: list[Path], out: str | Path, duration_ms: int = 150, hold_last_ms: int = 2000) -> Path:
    """Assemble frames into a looping GIF (the last frame held longer), written atomically."""
    if not frames:
        raise FileNotFoundError("no frames to animate; train with plots on (not --no-plots)")
    images = [Image.open(p) for p in frames]
    mode = "RGB" if any(i.mode == "RGB" for i in images) else "L"
    size = (max(i.width for i in images), max(i.height for i in images))  # a longer label can widen a frame
    canvases = []
    for im in images:
        canvas = Image.new(mode, size, (255, 255, 255) if mode == "RGB" else 255)
        canvas.paste(im.convert(mode), (0, 0))
        canvases.append(canvas)
    images = canvases
    durations = [duration_ms] * (len(images) - 1) + [hold_last_ms]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0)
    atomic_write_bytes(out, buf.getvalue())
    return Path(out)
