"""Every figure from a tiny trained model: right size, not blank, GIF frames, report links."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import vaekit
from vaekit.cli import main
from vaekit.config import ModelConfig, RunConfig
from vaekit.models import build_model
from vaekit.plots.callbacks import Pictures, TensorBoard
from vaekit.plots import (FILES, KINDS, interpolation_figure, manifold_figure, manifold_images,
                          normal_quantiles, scatter_figure, top_kl_dims, write_figures)
from vaekit.plots.grids import lerp, slerp

PNGS = ["manifold.png", "scatter.png", "reconstructions.png", "samples.png", "interpolation.png", "curves.png",
        "kl.png"]


def quiet(_):
    pass


def not_blank(path, floor=200.0):
    """Pixel variance above a floor: a figure with content, not an empty canvas."""
    arr = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    return arr.var() > floor


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("plots") / "run"
    cfg = RunConfig.from_dict({"data": {"name": "digits"}, "model": {"latent_dim": 2, "hidden": [32]},
                               "train": {"epochs": 4, "batch_size": 64}})
    vaekit.train(cfg, out, progress=False, callbacks=[Pictures(frame_every=1)], log=quiet)
    return out


def test_training_leaves_every_picture(run):
    for name in PNGS + ["traversals.png", "traversals.gif", "training.gif", "report.html"]:
        assert (run / name).is_file(), name
    assert not_blank(run / "traversals.png")  # one row per latent dimension: 2 short rows here
    for name in PNGS:
        img = Image.open(run / name)
        assert img.format == "PNG" and img.size[0] >= 300 and img.size[1] >= 200, (name, img.size)
        assert not_blank(run / name), name


def test_gif_has_one_frame_per_snapshot(run):
    frames = sorted((run / "frames").glob("epoch_*.png"))
    assert [f.name for f in frames] == [f"epoch_{e:04d}.png" for e in range(5)]  # untrained + 4 epochs
    gif = Image.open(run / "training.gif")
    assert gif.n_frames == 5 and gif.info.get("loop") == 0
    gif.seek(4)
    assert np.asarray(gif.convert("L")).var() > 100


def test_frame_cadence(tmp_path):
    cfg = RunConfig.from_dict({"data": {"name": "digits"}, "model": {"hidden": [16]}, "train": {"epochs": 5}})
    vaekit.train(cfg, tmp_path / "r", progress=False, callbacks=[Pictures(frame_every=2)], log=quiet)
    names = sorted(p.name for p in (tmp_path / "r" / "frames").iterdir())
    assert names == ["epoch_0000.png", "epoch_0002.png", "epoch_0004.png", "epoch_0005.png"]
    assert Image.open(tmp_path / "r" / "training.gif").n_frames == 4


def test_no_plots_draws_nothing(tmp_path):
    cfg = RunConfig.from_dict({"data": {"name": "digits"}, "model": {"hidden": [16]}, "train": {"epochs": 1}})
    vaekit.train(cfg, tmp_path / "r", progress=False, log=quiet)
    assert not list((tmp_path / "r").glob("*.png")) and not (tmp_path / "r" / "frames").exists()


def test_report_references_every_figure_and_is_self_contained(run):
    html = (run / "report.html").read_text()
    for name in PNGS + ["training.gif"]:
        assert f"data-file='{name}'" in html, name
    assert html.count("src='data:image/") == len(PNGS) + 2  # and the animation and the traversals
    assert "http://" not in html and "https://" not in html  # readable offline
    assert "best valid ELBO" in html and "Configuration" in html and '"latent_dim": 2' in html


def test_plot_command_redraws_into_another_folder(run, tmp_path, capsys):
    assert main(["plot", str(run), "--kind", "manifold", "gif", "report", "--out", str(tmp_path / "figs")]) == 0
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["manifold.png", "report.html", "training.gif"]
    html = (tmp_path / "figs" / "report.html").read_text()
    assert "data-file='manifold.png'" in html and "(samples.png was not drawn for this run)" in html


def test_plot_command_errors(run, tmp_path):
    from tests.test_cli import run_cli

    code, _, err = run_cli("plot", str(run), "--kind", "manifoldz")
    assert code == 2 and "invalid choice" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("plot", str(run), "--dims", "0", "5")
    assert code == 1 and "dimensions 0..1" in err


def test_manifold_grid_is_at_normal_quantiles_and_the_right_way_up():
    vals = normal_quantiles(5)
    from scipy.stats import norm

    ref = torch.tensor(norm.ppf(np.linspace(0.05, 0.95, 5)), dtype=torch.float32)
    torch.testing.assert_close(vals, ref, atol=1e-5, rtol=0)
    torch.manual_seed(0)
    model = build_model(ModelConfig(latent_dim=3, hidden=(8,)), (1, 4, 4))
    seen = []
    model.decode = lambda z: (seen.append(z.clone()), model.decoder(z))[1]
    manifold_images(model, n=5, dims=(0, 2))
    z = seen[0].reshape(5, 5, 3)
    assert torch.all(z[:, :, 1] == 0)  # the other dimension stays at the prior mean
    assert z[0, 0, 0] < z[0, -1, 0]  # left to right: z[0] rises
    assert z[0, 0, 2] > z[-1, 0, 2]  # top to bottom: z[2] falls, like a plot's y axis


def test_high_dimensional_latents_use_the_top_kl_dims_and_pca(tmp_path):
    assert top_kl_dims(torch.tensor([0.1, 3.0, 0.0, 2.0])) == (1, 3)
    torch.manual_seed(0)
    model = build_model(ModelConfig(latent_dim=6, hidden=(8,)), (1, 4, 4))
    x = torch.rand(60, 16)
    labels = torch.arange(60) % 3
    fig = scatter_figure(model, x, labels, projection="pca")
    assert "PC 1" in fig.axes[0].get_xlabel()
    fig = scatter_figure(model, x, labels, projection="tsne")
    assert "t-SNE" in fig.axes[0].get_xlabel()
    assert manifold_figure(model, 6, (2, 4)).axes[0].get_xlabel() == "z[2]"
    assert interpolation_figure(model, x, pairs=3, steps=5) is not None


def test_slerp_and_lerp_end_at_the_codes():
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    t = torch.linspace(0, 1, 7)
    for path in (lerp, slerp):
        p = path(a, b, t)
        assert p.shape == (4, 7, 3)
        torch.testing.assert_close(p[:, 0], a, atol=1e-5, rtol=0)
        torch.testing.assert_close(p[:, -1], b, atol=1e-5, rtol=0)


def test_write_figures_rejects_unknown_kinds(run):
    with pytest.raises(vaekit.VaekitError, match="figure kind"):
        write_figures(run, kinds=["histogram"])
    assert set(KINDS) == set(FILES)


def test_tensorboard_logs_when_installed(tmp_path):
    pytest.importorskip("tensorboard")
    cfg = RunConfig.from_dict({"data": {"name": "digits"}, "model": {"hidden": [16]}, "train": {"epochs": 2}})
    vaekit.train(cfg, tmp_path / "r", progress=False, callbacks=[Pictures(), TensorBoard()], log=quiet)
    events = list((tmp_path / "r" / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 1000
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "r" / "tensorboard"))
    acc.Reload()
    assert "elbo/valid" in acc.Tags()["scalars"] and len(acc.Scalars("elbo/valid")) == 2
    assert "samples" in acc.Tags()["images"]


def test_metrics_record_the_frame_cost(run):
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert all("frame_seconds" in r for r in rows)


def test_the_run_directory_knows_every_registered_figure_file():
    """--force removes exactly the files figures are drawn into: the two tables must agree."""
    from vaekit.rundir import PICTURE_FILES

    assert set(PICTURE_FILES) == set(FILES.values())
