import numpy as np
import pytest
import torch

from tests.conftest import shared_data
from vaekit.data import SPLITS, load_dataset, prepare
from vaekit.errors import VaekitError


@pytest.mark.parametrize("name,sizes,dim", [("mnist-5k", (4000, 500, 500), 784), ("digits", (1437, 180, 180), 64)])
def test_embedded_sets_split_disjointly(name, sizes, dim):
    parts = [load_dataset(name, s) for s in SPLITS]
    assert tuple(len(p) for p in parts) == sizes
    assert all(p.dim == dim and p.labels is not None for p in parts)
    rows = [set(map(bytes, p.x.numpy().astype(np.float32))) for p in parts]
    assert not (rows[0] & rows[1]) or name == "digits"  # digits has a few duplicate images
    # the sample is ordered by label: every split must still hold all ten digits
    assert all(len(p.labels.unique()) == 10 for p in parts)
    assert 0 <= parts[0].x.min() and parts[0].x.max() <= 1


def test_unknown_names_suggest_the_closest():
    with pytest.raises(VaekitError, match="did you mean 'mnist'"):
        load_dataset("mnst")
    with pytest.raises(VaekitError, match="split"):
        load_dataset("digits", "validation")


def test_prepare_binarizes_held_out_splits_the_same_way_every_time():
    ds = load_dataset("digits", "valid")
    a, b = prepare(ds, "dynamic"), prepare(ds, "dynamic")
    assert torch.equal(a.x, b.x) and set(a.x.unique().tolist()) <= {0.0, 1.0}
    assert prepare(ds, "none") is ds
    # binarization keeps the mean intensity (pixels are Bernoulli probabilities)
    assert abs(a.x.mean().item() - ds.x.mean().item()) < 0.01


def test_real_binarized_mnist_valid_split():
    folder = shared_data("binarized_mnist")
    ds = load_dataset("binarized-mnist", "valid", folder)
    assert ds.x.shape == (10000, 1, 28, 28) and ds.binary and ds.levels == 2
    assert set(ds.x[:100].unique().tolist()) == {0.0, 1.0}


def test_real_mnist_test_split():
    folder = shared_data("mnist")
    ds = load_dataset("mnist", "test", folder)
    assert ds.x.shape == (10000, 1, 28, 28) and ds.labels[:5].tolist() == [7, 2, 1, 0, 4] and ds.levels == 256


def test_the_shapes_data_set_is_drawn_from_its_factors():
    from vaekit.data.shapes import BACKGROUND, COLOURS, SHAPE_NAMES, render_shapes, shapes_factors

    f = shapes_factors(40)
    assert f.shape == (40, 6) and np.array_equal(f, shapes_factors(40))  # fixed seed: the same factors every time
    assert set(np.unique(f[:, 0])) <= set(range(len(SHAPE_NAMES))) and (f[:, 2] >= 0.18).all()
    img = render_shapes(f)
    assert img.shape == (40, 3, 32, 32) and img.dtype == np.uint8
    for i in range(40):  # the centre pixel has the shape's colour, a corner the background's
        cx, cy = int(f[i, 4] * 32), int(f[i, 5] * 32)
        assert np.abs(img[i, :, cy, cx] / 255 - COLOURS[int(f[i, 1])]).max() < 0.02
        assert np.abs(img[i, :, 0, 0] / 255 - BACKGROUND).max() < 0.01 or f[i, 5] < 0.3 or f[i, 4] < 0.3
    ds = load_dataset("shapes", "valid")
    assert ds.x.shape == (2000, 3, 32, 32) and ds.levels == 256 and ds.labels.max() == 3
    assert torch.equal(ds.labels, torch.from_numpy(shapes_factors()[16000:18000, 0].astype(np.int64)))
