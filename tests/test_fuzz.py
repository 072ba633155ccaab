"""Property-based tests: any bytes or any dictionary give a valid result or the documented error."""

import gzip
import string

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaekit.config import RunConfig
from vaekit.data import read_amat, read_idx
from vaekit.errors import DataError, VaekitError

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def idx_like():
    """Bytes that often look like an IDX header, sometimes not at all, sometimes gzipped."""
    header = st.tuples(st.sampled_from([0, 0, 0, 1]), st.sampled_from([0, 0, 8]),
                       st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07]), st.integers(0, 4))
    dims = st.lists(st.integers(0, 6), min_size=0, max_size=4)
    body = st.binary(max_size=300)

    def build(h, d, b):
        raw = bytes(h) + b"".join(int(v).to_bytes(4, "big") for v in d) + b
        return raw

    plain = st.builds(build, header, dims, body)
    return st.one_of(plain, st.binary(max_size=200), plain.map(gzip.compress),
                     plain.map(lambda b: gzip.compress(b)[: max(1, len(b) // 2)]))


@FAST
@given(data=idx_like())
def test_read_idx_returns_an_array_or_a_data_error(tmp_path, data):
    path = tmp_path / "f"
    path.write_bytes(data)
    try:
        arr = read_idx(path)
    except DataError as e:
        assert str(path) in str(e)
    else:
        assert isinstance(arr, np.ndarray) and arr.ndim >= 1


amat_tokens = st.sampled_from(["0", "1", "0", "1", "1.0", "2", "-1", "x", "", "0.5", "nan"])


@FAST
@given(rows=st.lists(st.lists(amat_tokens, min_size=0, max_size=6), max_size=5),
       sep=st.sampled_from([" ", "\t", "  "]), compress=st.booleans())
def test_read_amat_returns_binary_rows_or_a_data_error(tmp_path, rows, sep, compress):
    text = "\n".join(sep.join(r) for r in rows).encode()
    path = tmp_path / "f.amat"
    path.write_bytes(gzip.compress(text) if compress else text)
    try:
        arr = read_amat(path, dim=4)
    except DataError:
        return
    assert arr.shape[1] == 4 and set(np.unique(arr)) <= {0, 1}


@FAST
@given(st.binary(max_size=400))
def test_read_amat_on_any_bytes(tmp_path, data):
    path = tmp_path / "g.amat"
    path.write_bytes(data)
    try:
        arr = read_amat(path, dim=3)
    except DataError:
        return
    assert arr.shape[1] == 3


KEYS = {
    "data": ["name", "data_dir", "binarize", "nme"],
    "model": ["arch", "latent_dim", "hidden", "likelihood", "sigma", "prior", "latent"],
    "train": ["epochs", "batch_size", "lr", "optimizer", "momentum", "seed", "n_samples", "warmup_epochs",
              "lr_schedule", "patience", "max_minutes", "grad_clip", "epoch"],
}
values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 1000), st.floats(allow_nan=True, allow_infinity=True),
              st.text(string.ascii_letters + "-_", max_size=12),
              st.sampled_from(["mnist-5k", "digits", "binarized-mnist", "mlp", "gated-mlp", "bernoulli",
                               "gaussian", "standard", "adam", "sgd", "none", "dynamic", "static", "cosine"])),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=2),
    max_leaves=4,
)


def section(name):
    return st.dictionaries(st.sampled_from(KEYS[name]), values, max_size=4)


@FAST
@given(st.one_of(
    st.fixed_dictionaries({}, optional={"data": section("data"), "model": section("model"),
                                        "train": section("train"), "format_version": values}),
    st.dictionaries(st.text(max_size=8), values, max_size=3),
    values,
))
def test_any_config_dict_is_valid_or_a_vaekit_error(d):
    try:
        cfg = RunConfig.from_dict(d)
    except VaekitError as e:
        assert str(e)
        return
    assert RunConfig.from_dict(cfg.to_dict()) == cfg  # what validates also round-trips
