"""The ``vaekit`` command line: each subcommand calls one library function.

Errors in user input end with one line on stderr and a non-zero exit status
(``--debug`` shows the traceback instead).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import __version__
from dataclasses import fields

from .config import _SECTIONS, RunConfig, load_toml, registry, set_option
from .options import options_of
from .distributed import teardown
from .errors import VaekitError, os_error_line
from .cli_use import COMMANDS as USE_COMMANDS
from .cli_common import (DefaultsHelp, Parser, abs_dir, add_shared, check_run_dir, out_path, positive, run_config_for_data,
                         writing)
from .runs import RESUMABLE_CHANGES, WHERE_CHANGES

EPILOG = """examples:
  vaekit train                                  # the tutorial's VAE (2-D latent) on mnist-5k
  vaekit train --data binarized-mnist --data-dir DIR --latent-dim 20 --hidden 400 --epochs 5
  torchrun --standalone --nproc_per_node=4 -m vaekit train --config configs/quality.toml --data-dir DIR
  vaekit evaluate RUN_DIR --split valid --iw-samples 1000 --json
  vaekit sample RUN_DIR -n 64 --out samples.png
  vaekit reconstruct RUN_DIR --split valid -n 32 --out recon.png
  vaekit plot RUN_DIR --kind manifold scatter --projection tsne --out figures/
  vaekit encode RUN_DIR --split valid --out codes.csv
  vaekit evaluate RUN_DIR --per-image scores.csv
  vaekit fit-prior RUN_DIR --components 10 && vaekit sample RUN_DIR --sampler fitted
  vaekit export RUN_DIR --format onnx --out onnx/
  vaekit explore RUN_DIR                        # the latent space in the browser, on 127.0.0.1
"""

def _shown(default) -> str:
    return " ".join(map(str, default)) if isinstance(default, tuple) else f"{default:g}" \
        if isinstance(default, float) else str(default)


def _field_flag(section: str, f) -> tuple[str, str, dict]:
    """The ``vaekit train`` flag of a config field (its metadata says how)."""
    meta = f.metadata
    flag = meta.get("flag") or "--" + f.name.replace("_", "-")
    if "part" in meta:  # the name of a part: one of the registered ones
        return flag, f.name, {"default": None, "choices": tuple(sorted(registry(meta["part"]))),
                              "help": f"{meta['help']} (default: {f.default})"}
    kw: dict = {"default": None, "help": f"{meta['help']} (default: {meta['default_text'] or _shown(f.default)})"}
    if isinstance(f.default, bool):  # a switch: given means true
        return flag, f.name, {"action": "store_true", "default": None, "help": meta["help"]}
    choices = meta["choices"]() if callable(meta["choices"]) else meta["choices"]
    if choices:
        kw["choices"] = tuple(choices)
    else:
        kind = meta["kind"] or (type(f.default[0]) if isinstance(f.default, tuple) else type(f.default))
        kw["type"] = kind if kind in (int, float) else str
        kw["metavar"] = meta["metavar"] or {int: "N", float: "F"}.get(kind, "TEXT")
    if meta["nargs"]:
        kw["nargs"] = meta["nargs"]
    return flag, f.name, kw


def _part_flags(kind: str):
    """The flags of the options of every registered part of ``kind``, one per flag (parts may share one, as the
    mog and vamp priors share --prior-components), the help naming whose default is which."""
    by_flag: dict[str, list] = {}
    for name, cls in registry(kind).items():
        for o in options_of(cls):
            by_flag.setdefault(o.cli_flag, []).append((name, o))
    for flag, owned in by_flag.items():
        o = owned[0][1]
        helps = list(dict.fromkeys(x.help for _, x in owned))
        defaults = {x.default_text or _shown(x.default) for _, x in owned}
        shown = defaults.pop() if len(defaults) == 1 else ", ".join(
            f"{x.default_text or _shown(x.default)} for {n}" for n, x in owned)
        kw = {"default": None, "help": f"{'; '.join(helps)} (default: {shown})",
              "metavar": o.metavar or {int: "N", float: "F"}.get(o.kind, "TEXT")}
        if o.choices:
            kw = {**kw, "choices": o.choices}
            del kw["metavar"]
        else:
            kw["type"] = o.kind if o.kind in (int, float) else str
        if o.nargs:
            kw["nargs"] = o.nargs
        yield flag, o.flat, kw


def cli_options():
    """``(section, key, flag, argparse keyword arguments)`` for every option of ``vaekit train``: the config
    fields, and after each part's name the options its registered parts declare (their flat keys)."""
    for section, cls in _SECTIONS.items():
        for f in fields(cls):
            if not (f.metadata.get("cli") or "part" in f.metadata):
                continue
            flag, key, kw = _field_flag(section, f)
            yield section, key, flag, kw
            if "part" in f.metadata:
                for pflag, pkey, pkw in _part_flags(f.metadata["part"]):
                    yield section, pkey, pflag, pkw


def _train_parser(sub) -> None:
    t = sub.add_parser("train", help="train a VAE and write a run directory",
                       description="Train a VAE. With no options: the tutorial's MLP VAE with a 2-D latent on "
                                   "mnist-5k (dynamically binarized, Bernoulli likelihood). Options override "
                                   "--config, which overrides the defaults shown.")
    t.add_argument("--config", metavar="FILE.toml", help="preset with [data], [model], [train] tables")
    groups = {"data": t.add_argument_group("data"), "model": t.add_argument_group("model"),
              "train": t.add_argument_group("training")}
    for section, key, flag, kw in cli_options():  # each declared once, beside its config field or its part
        groups[section].add_argument(flag, dest=f"{section}.{key}", **kw)
    g = groups["train"]
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="compile the training step with torch.compile (needs a C++ compiler on a CPU; seconds, "
                        "once; +10-20%% with bf16 and +7-15%% in fp32 on an AVX2 one, measured on 2-core CPUs). Default: on for runs of 5 "
                        "million images or more (epochs x training images), where it pays, except fp32 on a GPU")
    add_shared(g, ("device", "where to train: auto picks cuda, then mps, then cpu; under torchrun each process takes "
                          "the GPU of its local rank (default: auto)"))
    g = t.add_argument_group("run directory")
    g.add_argument("--out", metavar="RUN_DIR", default=None,
                   help="where to write the run (default: runs/DATA-YYYYmmdd-HHMMSS)")
    free = ", ".join("--" + k.replace("_", "-") for k in (*RESUMABLE_CHANGES, *(k for _, k in WHERE_CHANGES)))
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint; the options that change the result "
                        f"must equal the saved ones, so the command that started the run works as it is ({free} "
                        "may change)")
    g.add_argument("--force", action="store_true", help="overwrite an existing run directory")
    add_shared(g, "no_progress")
    g = t.add_argument_group("pictures")
    g.add_argument("--no-plots", action="store_true",
                   help="draw no figures, animation frames or report (by default all are written into the run)")
    g.add_argument("--frame-every", type=int, metavar="N", default=None,
                   help="draw a frame of training.gif every N epochs, and after the last (default: about "
                        "50 frames per run, i.e. every ceil(epochs/50) epochs)")
    g.add_argument("--tensorboard", action="store_true",
                   help="also log scalars and frames for TensorBoard into RUN_DIR/tensorboard "
                        "(needs: pip install tensorboard)")


def _evaluate_parser(sub) -> None:
    e = sub.add_parser("evaluate", help="ELBO and importance-weighted NLL of a trained run",
                       description="Evaluate a run: the ELBO, its terms and the importance-weighted estimate of "
                                   "-log p(x) (nats per image, and bits per dimension).",
                       formatter_class=DefaultsHelp)
    add_shared(e, "run_dir", "data", "data_file", "data_dir", ("split", "split to evaluate"), "keep_classes")
    e.add_argument("--iw-samples", type=int, metavar="K", default=1000,
                   help="importance samples per image for the NLL estimate")
    add_shared(e, "batch_size")
    e.add_argument("--prior", dest="pz", choices=("trained", "fitted"), default="trained",
                   help="p(z) to score with: the trained one, or the mixture 'vaekit fit-prior' fitted")
    e.add_argument("--per-image", metavar="FILE", default=None,
                   help="also write every image's NLL, ELBO, reconstruction, KL (nats) and bits/dim, with its "
                        "index, label and file, to FILE (.csv or .npz)")
    e.add_argument("--record", action="store_true",
                   help="add these figures to the run's model card (RUN_DIR/README.md)")
    e.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="best valid ELBO (model.safetensors) or the last epoch")
    e.add_argument("--disentanglement", action="store_true",
                   help="also MIG, DCI, SAP and the FactorVAE score of the posterior means against the factors "
                        "that drew the images (data sets that declare them: shapes); see docs/pictures.md")
    add_shared(e, ("seed", "seed of the importance samples"), "device")
    e.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    add_shared(e, "no_progress")


def _sample_parser(sub) -> None:
    s = sub.add_parser("sample", help="draw new images from the prior: z ~ p(z), decode",
                       formatter_class=DefaultsHelp)
    add_shared(s, "run_dir", "n")
    s.add_argument("--label", type=int, metavar="K", default=None,
                   help="a conditional model (--variant cvae): draw class K (default: a row of each class)")
    s.add_argument("--sampler", choices=("prior", "fitted"), default="prior",
                   help="draw z from the trained prior, or from the mixture 'vaekit fit-prior' fitted")
    add_shared(s, "seed")
    s.add_argument("--out", metavar="FILE.png", default=None, help="output image (default: RUN_DIR/samples.png)")


def _reconstruct_parser(sub) -> None:
    r = sub.add_parser("reconstruct", help="images beside their reconstructions",
                       formatter_class=DefaultsHelp)
    add_shared(r, "run_dir", ("split", "split to draw images from"), "data_dir")
    r.add_argument("-n", type=int, default=32, help="number of images")
    r.add_argument("--out", metavar="FILE.png", default=None,
                   help="output image (default: RUN_DIR/reconstructions.png)")


def _plot_parser(sub) -> None:
    from .plots import KINDS, PROJECTIONS

    pl = sub.add_parser("plot", help="redraw the figures, animation and report of a saved run",
                        description="Redraw pictures of a saved run from its checkpoint, metrics and frames. "
                                    f"Kinds: {', '.join(KINDS)} (default: all).",
                        formatter_class=DefaultsHelp)
    add_shared(pl, "run_dir")
    pl.add_argument("--kind", nargs="+", choices=KINDS, metavar="KIND", default=None,
                    help=f"which pictures, any of: {', '.join(KINDS)} (default: all)")
    pl.add_argument("--out", metavar="DIR", default=None, help="folder to write into (default: RUN_DIR)")
    add_shared(pl, "data_dir")
    pl.add_argument("--dims", type=int, nargs=2, metavar=("I", "J"), default=None,
                    help="latent dimensions of the manifold grid (default: the two with the largest KL)")
    pl.add_argument("--projection", choices=PROJECTIONS, default="pca",
                    help="2-D view of the scatter plot for latents with more than two dimensions")
    pl.add_argument("--base-image", type=int, metavar="N", default=None,
                    help="traversals: start from valid image N's posterior mean (default: the prior's mean)")


def _parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="vaekit", description="Train, evaluate and sample Variational Autoencoders (Kingma & Welling, 2014).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"vaekit {__version__}")
    p.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for build, _ in COMMANDS.values():
        build(sub)
    return p


def cmd_train(a) -> int:
    from .distributed import setup
    from .runs import saved_config
    from .train import train

    flags = {(sec, key): flag for sec, key, flag, _ in cli_options()}
    given = {sk: getattr(a, f"{sk[0]}.{sk[1]}") for sk in flags if getattr(a, f"{sk[0]}.{sk[1]}") is not None}
    if ("data", "data_dir") in given:
        given[("data", "data_dir")] = abs_dir(given[("data", "data_dir")])
    if ("data", "data_file") in given:  # saved as an absolute path, so the run finds it from anywhere
        given[("data", "data_file")] = str(Path(given[("data", "data_file")]).resolve())
    if a.resume and not a.out:
        raise VaekitError("--resume needs --out RUN_DIR, the run to continue")
    # a resumed run starts from its saved settings; what the command gives must agree with them
    # (vaekit.train refuses a difference that would change the result, naming both values)
    saved = saved_config(Path(a.out)) if a.resume else None  # None: killed before it wrote its settings
    d = saved.to_dict() if saved is not None else {}
    for sec, values in (load_toml(a.config) if a.config else {}).items():
        if isinstance(values, dict) and isinstance(d.get(sec), dict):
            for key, value in values.items():
                set_option(d, sec, key, value)
        else:
            d[sec] = values
    for (sec, key), value in given.items():
        if not isinstance(d.setdefault(sec, {}), dict):
            raise VaekitError(f"{a.config}: '{sec}' must be a table")
        set_option(d, sec, key, value)
    cfg = RunConfig.from_dict(d, source=a.config or "options")
    if a.frame_every is not None:
        positive(a.frame_every, "--frame-every")
    callbacks = []
    if not a.no_plots:
        from .plots.callbacks import Pictures

        callbacks.append(Pictures(a.frame_every))
    if a.tensorboard:
        from .plots.callbacks import TensorBoard

        callbacks.append(TensorBoard())
    ctx = setup(a.device)
    if a.resume and ctx.is_main and (a.compile is not None or a.device != "auto"):
        how = ", ".join(x for x in (f"--device {a.device}" if a.device != "auto" else "",
                                    {True: "--compile", False: "--no-compile", None: ""}[a.compile]) if x)
        print(f"note: {how} says only where or how fast the run goes on; it is not part of the saved settings",
              flush=True)
    # under torchrun every process needs the same folder: rank 0's clock names it
    out = a.out or ctx.broadcast(f"runs/{cfg.data.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    t0 = time.perf_counter()
    result = train(cfg, out, resume=a.resume, force=a.force, progress=False if a.no_progress else None,
                   callbacks=callbacks, compile=a.compile,
                   device=a.device, log=lambda m: print(m, flush=True))
    if not ctx.is_main:
        return 0
    last = result.history[-1] if result.history else None
    print(f"done in {time.perf_counter() - t0:.0f} s: best valid ELBO {result.best_valid_elbo:.2f} nats "
          f"({cfg.describe_data()})" if last else "nothing to do")
    files = "config.json, model.safetensors, last.safetensors, metrics.jsonl"
    print(f"run directory: {result.run_dir}  ({files}" + ("" if a.no_plots else ", report.html and figures") + ")")
    print(f"next: vaekit evaluate {result.run_dir} --split valid --iw-samples 1000")
    return 0


def cmd_evaluate(a) -> int:
    from .checkpoint import load
    from .limits import check_iw_samples
    from .runs import load_split
    from .distributed import setup
    from .evaluate import evaluate
    from .heap import keep_freed_memory

    keep_freed_memory()  # thousands of importance samples a batch: reuse their buffers, as training does
    positive(a.iw_samples, "--iw-samples")
    positive(a.batch_size, "--batch-size")
    check_iw_samples(a.iw_samples)  # before the data are read
    if a.per_image:
        from .encode import check_table_path

        check_table_path(a.per_image, "--per-image")
    ctx = setup(a.device)
    cfg = run_config_for_data(a.run_dir, a.data, abs_dir(a.data_dir), a.data_file, a.keep_classes)
    model = load(a.run_dir, checkpoint=a.checkpoint, device=ctx.device)
    prior = None
    if a.pz == "fitted":
        from .fitted import load_fitted_prior

        prior = load_fitted_prior(a.run_dir, model).to(ctx.device)
    ds = ctx.main_first(lambda: load_split(cfg, a.split, model.image_shape))  # rank 0 downloads, if it must
    factors = _factors_for(a, cfg, model, ds) if a.disentanglement else None  # refused before the long work
    t0 = time.perf_counter()
    res = evaluate(model, ds, iw_samples=a.iw_samples, batch_size=a.batch_size, seed=a.seed,
                   progress=not a.no_progress and not a.json, context=ctx, prior=prior, per_image=bool(a.per_image))
    if not ctx.is_main:
        return 0
    per = res.pop("per_image", None)
    res["processes"] = ctx.world_size
    res.update(split=a.split, data=cfg.data.name, binarization=cfg.describe_data(), prior=a.pz,
               keep_classes=list(cfg.data.keep_classes) if cfg.data.keep_classes else None,
               checkpoint=a.checkpoint, run_dir=str(a.run_dir), seconds=round(time.perf_counter() - t0, 3))
    if per is not None:
        from .encode import write_table

        trace = {"index": ds.positions().numpy(), **({"source": ds.sources} if ds.sources is not None else {}),
                 **({"label": ds.labels.numpy()} if ds.labels is not None else {})}
        res["per_image_file"] = str(write_table({**trace, **per}, a.per_image))
    if factors is not None:
        from .disentangle import measure

        res["disentanglement"] = measure(model, ds, factors, seed=a.seed)
    if a.record:
        from .card import record_evaluation
        from .runs import RunLock

        lock = RunLock(Path(a.run_dir)).acquire()  # not while a run trains there
        try:
            res["card"] = str(record_evaluation(a.run_dir, res))
        finally:
            lock.release()
    if a.json:
        print(json.dumps(res))
        return 0
    _print_evaluation(res, a)
    return 0


def _factors_for(a, cfg, model, ds):
    from .disentangle import factors_of

    if getattr(model, "conditional", False):
        raise VaekitError("--disentanglement measures what the codes hold of every factor; a conditional model is "
                          "given its label as an input, so its codes are not meant to hold it: measure a plain or "
                          "hierarchical model")
    return factors_of(cfg.data.name, a.split, model.image_shape[-1], ds)


def _print_disentanglement(d: dict) -> None:
    dci = d["dci"]
    fvae = d.get("factor_vae", {}).get("factor_vae", float("nan"))
    print(f"  disentanglement (factors: {', '.join(d['factors'])}; 1 is best)")
    print(f"    MIG {d['mig']['mig']:.3f}   DCI disentanglement {dci['disentanglement']:.3f}, completeness "
          f"{dci['completeness']:.3f}, informativeness {dci['informativeness']:.3f}   SAP {d['sap']['sap']:.3f}   "
          f"FactorVAE {fvae:.3f}")


def _print_evaluation(res: dict, a) -> None:
    fitted = ", with the fitted prior" if a.pz == "fitted" else ""
    print(f"{res['binarization']}, split '{a.split}', {res['n_images']} images, checkpoint '{a.checkpoint}'{fitted}")
    print(f"  ELBO            {res['elbo']:10.3f} nats  (reconstruction {res['reconstruction']:.3f}, "
          f"KL {res['kl']:.3f}, {res['kl_form']})")
    print(f"  NLL (K={a.iw_samples:<5d})   {res['nll']:10.3f} nats  (+/- {res['nll_stderr']:.3f} s.e.), "
          f"{res['bits_per_dim']:.4f} bits/dim")
    if res["conditional"]:
        print("  (a conditional model: the ELBO and NLL are of log p(x | y), given each image's label)")
    if "disentanglement" in res:
        _print_disentanglement(res["disentanglement"])
    if "per_image_file" in res:
        print(f"wrote {res['per_image_file']} (one row per image)")
    if "card" in res:
        print(f"recorded in {res['card']}")


def cmd_sample(a) -> int:
    from .checkpoint import load
    from .plots import save_samples

    positive(a.n, "-n")
    out = out_path(a.out, check_run_dir(a.run_dir), "samples.png")
    model = load(a.run_dir)
    if a.label is not None and not getattr(model, "conditional", False):
        raise VaekitError("--label needs a conditional model (trained with --variant cvae); this run's model "
                          "ignores labels: drop --label")
    if a.label is not None and not 0 <= a.label < model.classes:
        raise VaekitError(f"--label {a.label}: this model's labels are 0..{model.classes - 1}")
    sampler = None
    if a.sampler == "fitted":
        from .fitted import load_fitted_prior

        sampler = load_fitted_prior(a.run_dir, model)
    path = writing(out, save_samples, model, out, n=a.n, seed=a.seed, label=a.label, sampler=sampler)
    print(f"wrote {path}")
    return 0


def cmd_reconstruct(a) -> int:
    from .checkpoint import load
    from .data import to_unit
    from .plots import save_reconstructions
    from .runs import load_split

    positive(a.n, "-n")
    out = out_path(a.out, check_run_dir(a.run_dir), "reconstructions.png")
    cfg = run_config_for_data(a.run_dir, None, abs_dir(a.data_dir))
    model = load(a.run_dir)
    ds = load_split(cfg, a.split, model.image_shape)
    path = writing(out, save_reconstructions, model, to_unit(ds.x[: a.n]), out, n=a.n, y=ds.labels)
    print(f"wrote {path}")
    return 0


def cmd_plot(a) -> int:
    from .plots import write_figures

    out = Path(a.out) if a.out else Path(check_run_dir(a.run_dir))
    if a.out:
        check_run_dir(a.run_dir)  # before a folder is made for it
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise VaekitError(f"{os_error_line(e, 'create the folder')} (--out)") from None
    written = writing(out, write_figures, a.run_dir, kinds=a.kind or None, out_dir=out, data_dir=abs_dir(a.data_dir),
                       dims=tuple(a.dims) if a.dims else None, projection=a.projection,
                       log=lambda m: print(m, file=sys.stderr), base_image=a.base_image)
    for path in written.values():
        print(f"wrote {path}")
    return 0


# each subcommand: the function that declares its flags, and the one that runs it
COMMANDS = {"train": (_train_parser, cmd_train), "evaluate": (_evaluate_parser, cmd_evaluate),
            "sample": (_sample_parser, cmd_sample), "reconstruct": (_reconstruct_parser, cmd_reconstruct),
            "plot": (_plot_parser, cmd_plot), **USE_COMMANDS}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    a = parser.parse_args(argv)
    if not a.command:
        parser.print_help()
        return 0
    together = False  # under torchrun: may every rank leave the process group together?
    try:
        status = COMMANDS[a.command][1](a)
        together = True  # every rank finished
    except KeyboardInterrupt:
        if a.debug:
            raise
        print("vaekit: interrupted; nothing half-written was left (a training run keeps its last finished "
              "epoch: continue it with --resume)", file=sys.stderr)
        return 130
    except (VaekitError, OSError) as e:
        if a.debug:
            raise
        msg = str(e) if isinstance(e, VaekitError) else os_error_line(e)
        if not getattr(e, "reported_by_main", False):
            print(f"vaekit: error: {msg}", file=sys.stderr)
        status, together = 1, getattr(e, "on_every_rank", False)  # raised by every rank at the same point
    if together:  # outside the except block, so the error's traceback (and what it holds) is gone first
        teardown(wait=True)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
