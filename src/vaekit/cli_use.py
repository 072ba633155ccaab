"""The subcommands that take a trained run out of its directory: ``encode`` (latent codes of your images),
``fit-prior`` (a latent sampler fitted to the training codes) and ``export`` (ONNX graphs). Each declares its
flags and calls one library function; :mod:`vaekit.cli` registers them with the others.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .cli_common import DefaultsHelp, abs_dir, add_shared, check_run_dir, positive, run_config_for_data
from .errors import VaekitError


def _encode_parser(sub) -> None:
    e = sub.add_parser("encode", help="latent codes of a split or of your images: posterior means, log-variances",
                       description="Encode images with a trained run: for every image the mean and log-variance of "
                                   "q(z|x) (and --samples draws), its position in the split, its label and, for your "
                                   "own images, its file or row. New data are prepared as the run's were "
                                   "(binarization, dequantisation) and must have the run's image shape.",
                       formatter_class=DefaultsHelp)
    add_shared(e, "run_dir", "data", "data_file", "data_dir", ("split", "split to encode"), "keep_classes")
    e.add_argument("--out", metavar="FILE", required=True, help="codes.npz or codes.csv (the suffix says which)")
    e.add_argument("--samples", type=int, metavar="S", default=0, help="also S draws z ~ q(z|x) per image")
    add_shared(e, ("batch_size", "images per batch"), ("seed", "seed of the draws"), "device", "no_progress")


def cmd_encode(a) -> int:
    from .distributed import resolve_device
    from .encode import check_table_path, encode, write_table
    from .runs import load_split

    check_table_path(a.out)
    positive(a.batch_size, "--batch-size")
    if a.samples < 0:
        raise VaekitError(f"--samples must be >= 0, got {a.samples}")
    cfg = run_config_for_data(check_run_dir(a.run_dir), a.data, abs_dir(a.data_dir), a.data_file, a.keep_classes)
    from .checkpoint import load

    model = load(a.run_dir, device=resolve_device(a.device))
    ds = load_split(cfg, a.split, model.image_shape)
    t0 = time.perf_counter()
    codes = encode(model, ds, samples=a.samples, batch_size=a.batch_size, seed=a.seed, progress=not a.no_progress)
    path = write_table(codes, a.out)
    print(f"wrote {path}: {len(codes['mean']):,} images of {cfg.describe_data()}, split '{a.split}', "
          f"{model.latent_dim} latent dimensions ({', '.join(codes)}) in {time.perf_counter() - t0:.1f} s")
    return 0


def _fit_prior_parser(sub) -> None:
    from .fitted import CODES, COVARIANCES

    f = sub.add_parser("fit-prior", help="fit a Gaussian mixture to the training codes: a better latent sampler",
                       description="Fit a Gaussian mixture (scikit-learn) to the aggregate posterior of the run's "
                                   "training images and save it in the run (fitted_prior.safetensors). Then "
                                   "'vaekit sample RUN --sampler fitted' draws from it and 'vaekit evaluate RUN "
                                   "--prior fitted' gives the NLL of the model with it as p(z).",
                       formatter_class=DefaultsHelp)
    add_shared(f, "run_dir", "data_dir")
    f.add_argument("--components", type=int, metavar="K", default=10, help="mixture components")
    f.add_argument("--covariance", choices=COVARIANCES, default="full", help="each component's covariance")
    f.add_argument("--codes", choices=CODES, default="sample",
                   help="fit draws z ~ q(z|x) (the aggregate posterior) or the posterior means")
    f.add_argument("--draws", type=int, metavar="N", default=1, help="with --codes sample: draws per image")
    add_shared(f, ("seed", "seed of the draws and of the mixture's initialisation"), "device")


def cmd_fit_prior(a) -> int:
    from .checkpoint import load
    from .distributed import resolve_device
    from .fitted import fit_prior, save_fitted_prior
    from .runs import RunLock, load_split

    positive(a.components, "--components")
    positive(a.draws, "--draws")
    cfg = run_config_for_data(check_run_dir(a.run_dir), None, abs_dir(a.data_dir))
    model = load(a.run_dir, device=resolve_device(a.device))
    ds = load_split(cfg, "train", model.image_shape)  # one fixed sample of a dynamic binarization
    prior = fit_prior(model, ds, a.components, a.covariance, a.codes, a.draws, a.seed)
    lock = RunLock(Path(a.run_dir)).acquire()  # not while a run trains there
    try:
        path = save_fitted_prior(prior, a.run_dir)
    finally:
        lock.release()
    i = prior.info
    print(f"wrote {path}: {i['components']} components ({i['covariance']} covariance) fitted to {i['n_codes']:,} "
          f"codes ({i['codes']}) of the train split in {i['seconds']:.1f} s, "
          f"{'converged' if i['converged'] else 'not converged'} after {i['iterations']} iterations; mean "
          f"log-density of the codes {i['mean_log_density']:.3f} nats")
    print(f"next: vaekit evaluate {a.run_dir} --prior fitted; vaekit sample {a.run_dir} --sampler fitted")
    return 0


def _export_parser(sub) -> None:
    from .export import FORMATS, TOLERANCE

    x = sub.add_parser("export", help="the encoder and decoder as ONNX graphs, checked against PyTorch",
                       description="Export a run's encoder (images -> mean, log-variance) and decoder (z -> mean "
                                   "image and the likelihood's parameters) as ONNX graphs with a dynamic batch "
                                   f"dimension, each checked with onnxruntime (fails above {TOLERANCE:g}). Needs "
                                   "pip install 'vaekit[export]'.",
                       formatter_class=DefaultsHelp)
    add_shared(x, "run_dir")
    x.add_argument("--format", choices=FORMATS, default="onnx", help="what to write")
    x.add_argument("--out", metavar="DIR", default=None, help="folder to write into (default: RUN_DIR/onnx)")
    x.add_argument("--checkpoint", choices=("best", "last"), default="best", help="which weights")


def cmd_export(a) -> int:
    from .checkpoint import load
    from .export import export_onnx
    from .rundir import EXPORT_DIR

    out = Path(a.out) if a.out else Path(check_run_dir(a.run_dir)) / EXPORT_DIR
    info = export_onnx(load(a.run_dir, checkpoint=a.checkpoint), out)
    for name, g in info["graphs"].items():
        print(f"wrote {out / g['file']}: ({', '.join(g['inputs'])}) -> ({', '.join(g['outputs'])}), max abs "
              f"difference from PyTorch {g['max_abs_diff']:.2g}")
    print(f"wrote {out / 'onnx.json'}")
    return 0


def _explore_parser(sub) -> None:
    x = sub.add_parser("explore", help="walk through the latent space in the browser: a local page on the model",
                       description="Serve a page on 127.0.0.1 that decodes any point of the latent plane live, shows "
                                   "the valid images as points coloured by label, a slider for every latent "
                                   "dimension (by KL), images with their posterior, drawings encoded, "
                                   "interpolations and samples. Stops with Ctrl-C. --export writes the page as one "
                                   "file that runs the model itself (MLP and gated-MLP models).",
                       formatter_class=DefaultsHelp)
    add_shared(x, "run_dir")
    x.add_argument("--port", type=int, default=0, help="port to listen on (0: a free one)")
    x.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; anything but 127.0.0.1 or localhost lets other machines reach it")
    x.add_argument("--dims", type=int, nargs=2, metavar=("I", "J"), default=None,
                   help="the plane of latent dimensions I and J (default: the two dimensions of a 2-D latent, "
                        "else the PCA plane of the posterior means)")
    x.add_argument("--export", metavar="PAGE.html", default=None,
                   help="write a self-contained page (no server, no Python) instead of serving")
    add_shared(x, "device")


def cmd_explore(a) -> int:
    from .distributed import resolve_device
    from .explore import Explorer, export_page, make_server

    check_run_dir(a.run_dir)
    dims = tuple(a.dims) if a.dims else None
    if a.export:
        path = export_page(a.run_dir, a.export, dims)
        print(f"wrote {path}: open it in a browser, no server needed")
        return 0
    if not 0 <= a.port <= 65535:
        raise VaekitError(f"--port must be 0..65535, got {a.port}")
    if a.host not in ("127.0.0.1", "localhost"):
        print(f"warning: listening on {a.host}: other machines that reach it can use the page and the model",
              file=sys.stderr, flush=True)
    explorer = Explorer(a.run_dir, dims=dims, device=resolve_device(a.device))
    try:
        server = make_server(explorer, a.host, a.port)
    except OSError as e:
        raise VaekitError(f"cannot listen on {a.host}:{a.port} ({e.strerror or e}); choose another --port") from None
    host, port = server.server_address[:2]
    print(f"vaekit explore: serving {a.run_dir} at http://{'127.0.0.1' if host == '127.0.0.1' else a.host}:{port}/ "
          "(Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("vaekit explore: stopped", flush=True)
    finally:
        server.server_close()
    return 0


COMMANDS = {"encode": (_encode_parser, cmd_encode), "fit-prior": (_fit_prior_parser, cmd_fit_prior),
            "export": (_export_parser, cmd_export), "explore": (_explore_parser, cmd_explore)}

__all__ = ["COMMANDS"]
