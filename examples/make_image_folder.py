"""Write a folder of colour images to try `vaekit train --data folder` on: shapes of four kinds in their
own class folders, as PNG and JPEG files of two sizes (so that --image-size is needed).

    python examples/make_image_folder.py OUT_DIR [-n 1000]
    vaekit train --data folder --data-dir OUT_DIR --image-size 32 --latent-dim 16 --epochs 30

The pictures come from vaekit's `shapes` renderer (numpy only), drawn with factors of their own
seed, so they are not the `shapes` data set's images.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from vaekit.data.shapes import SHAPE_NAMES, render_shapes, shapes_factors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="folder to write (created; must be empty or absent)")
    ap.add_argument("-n", type=int, default=1000, help="number of images")
    a = ap.parse_args()
    out = Path(a.out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty; choose a new folder")
    factors = shapes_factors(a.n, seed=7)
    for side in (40, 48):
        pick = np.arange(a.n)[(np.arange(a.n) % 2) == (side == 48)]
        images = render_shapes(factors[pick], side=side)
        for k, img in zip(pick, images):
            folder = out / SHAPE_NAMES[int(factors[k, 0])]
            folder.mkdir(parents=True, exist_ok=True)
            pil = Image.fromarray(img.transpose(1, 2, 0))
            if k % 3 == 0:
                pil.save(folder / f"{k:05d}.jpg", quality=92)
            else:
                pil.save(folder / f"{k:05d}.png")
    print(f"wrote {a.n} images into {out} ({', '.join(SHAPE_NAMES)}; 40x40 and 48x48, PNG and JPEG)")


if __name__ == "__main__":
    main()
