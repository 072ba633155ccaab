"""Pictures of a VAE and its training, each a function returning a matplotlib Figure,
plus :func:`write_figures`, which draws any set of them for a run directory.

=============== ===================== ===============================================
kind            file                  what
=============== ===================== ===============================================
manifold        manifold.png          decoded grid of latent points at N(0,1) quantiles
scatter         scatter.png           posterior means coloured by label (PCA/t-SNE > 2-D)
recon           reconstructions.png   inputs above their reconstructions
samples         samples.png           decoded draws from the prior
interpolation   interpolation.png     linear and spherical paths between real images
curves          curves.png            ELBO, reconstruction, KL per epoch
kl              kl.png                KL per latent dimension, active units
gif             training.gif          one frame per snapshot during training
report          report.html           one self-contained page with all of the above
=============== ===================== ===============================================
"""

from __future__ import annotations

from .animation import frame_paths, render_frame, save_frame, snapshot_grid, write_gif
from .curves import curves_figure
from .grids import (image_grid, interpolation_figure, manifold_figure, manifold_images, manifold_per_label_figure,
                    normal_quantiles, reconstructions_figure, samples_figure, save_figure)
from .latent import PROJECTIONS, kl_figure, project_2d, scatter_figure
from .figures import (FILES, KINDS, SCATTER_MAX, figure, save_reconstructions, save_samples, top_kl_dims,
                      write_figures)
from .report import FIGURES, build_report, write_report

__all__ = [
    "FIGURES", "FILES", "KINDS", "SCATTER_MAX", "figure", "PROJECTIONS", "build_report", "curves_figure", "frame_paths", "image_grid",
    "interpolation_figure", "kl_figure", "manifold_figure", "manifold_images", "manifold_per_label_figure",
    "normal_quantiles",
    "project_2d", "reconstructions_figure", "render_frame", "samples_figure", "save_figure", "save_frame",
    "save_reconstructions", "save_samples", "scatter_figure", "snapshot_grid", "top_kl_dims", "write_figures",
    "write_gif", "write_report",
]
