"""The tutorial's MNIST experiment, as the CS446 mp10 driver ran it, with vaekit's VariationalAutoencoder.

Adam, learning rate 0.0005, batch 16, 5000 steps on MNIST images in [0, 1]; then the 20 x 20
grid of decoded z over [-3, 3]^2 (z = [y, x], one row per x) saved as ``latent_space_vae.png``,
and the animation of that grid during training, ``vae.gif`` (the picture the tutorial ends with).

    python examples/tutorial_experiment.py                       # embedded mnist-5k, ~10 s on 2 CPU cores
    python examples/tutorial_experiment.py --data-dir DIR        # MNIST IDX files (train-images-idx3-ubyte.gz ...)
    python examples/tutorial_experiment.py --objective elbo --evaluate 5000 --out runs/tutorial-elbo

``--objective elbo`` trains the same networks on vaekit's ELBO (Gaussian sigma = 1 likelihood
with its constant, both terms per image, averaged over the batch) instead of the tutorial's
loss; ``--evaluate K`` scores the trained model on the valid split: ELBO, KL (nats per image),
active latent dimensions and -log p(x) from the importance-weighted bound with K samples.
The data are grey levels in [0, 1] (no binarization), as in the tutorial; every number is in
nats under the Gaussian sigma = 1 likelihood, a density over [0, 1]^784 with its constant.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

import vaekit
from vaekit.checkpoint import atomic_write_bytes, atomic_write_text
from vaekit.data import load_dataset
from vaekit.evaluate import unit_activity
from vaekit.plots.animation import GREY_LEVELS, _font
from vaekit.tutorial import VariationalAutoencoder, batch_stream, latent_grid, latent_grid_image

OBJECTIVES = ("tutorial", "elbo")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--data", default=None,
                   help="data set name: mnist-5k (default; embedded), or mnist / fashion-mnist with --data-dir")
    p.add_argument("--data-dir", default=None, help="folder of IDX files (implies --data mnist)")
    p.add_argument("--split", default="train", choices=("train", "valid", "test"),
                   help="split to train on (default train; 'test' trains on the t10k files alone)")
    p.add_argument("--steps", type=int, default=5000, help="Adam steps (default 5000, as the assignment)")
    p.add_argument("--batch-size", type=int, default=16, help="images per step (default 16)")
    p.add_argument("--learning-rate", type=float, default=0.0005, help="Adam learning rate (default 0.0005)")
    p.add_argument("--nlatent", type=int, default=2, help="latent dimensions (default 2; the grid needs 2)")
    p.add_argument("--objective", default="tutorial", choices=OBJECTIVES,
                   help="tutorial: the tutorial's loss (default); elbo: vaekit's negative ELBO per image")
    p.add_argument("--frame-every", type=int, default=100, help="steps between frames of vae.gif (default 100)")
    p.add_argument("--evaluate", type=int, default=0, metavar="K",
                   help="after training, score the valid split with K importance samples (default 0: skip)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, batches and samples (default 0)")
    p.add_argument("--out", default="tutorial-experiment", help="output folder (default tutorial-experiment/)")
    args = p.parse_args(argv)
    if args.data is None:
        args.data = "mnist" if args.data_dir else "mnist-5k"
    for name in ("steps", "batch_size", "frame_every", "nlatent"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.evaluate < 0:
        p.error(f"--evaluate must be >= 0, got {args.evaluate}")
    if not args.learning_rate > 0:
        p.error(f"--learning-rate must be > 0, got {args.learning_rate}")
    return args


def frame(model: VariationalAutoencoder, step: int, loss: float | None) -> Image.Image:
    """One frame of vae.gif: the latent grid (white digits on black, as the assignment saved it) under a label."""
    grid = latent_grid(model)  # [560, 560]
    half = grid.reshape(grid.shape[0] // 2, 2, grid.shape[1] // 2, 2).mean((1, 3))  # 14-pixel digits keep it small
    levels = np.round(np.clip(half, 0, 1) * (GREY_LEVELS - 1)) * (255 // (GREY_LEVELS - 1))
    img = Image.fromarray(levels.astype(np.uint8), mode="L")
    out = Image.new("L", (img.width, img.height + 22), 0)
    out.paste(img, (0, 22))
    label = f"step {step}" + (f"   loss {loss:.1f}" if loss is not None else "   untrained")
    ImageDraw.Draw(out).text((5, 3), label, fill=255, font=_font(14))
    return out


def write_gif(frames: list[Image.Image], path: Path, duration_ms: int = 120, hold_last_ms: int = 2000) -> None:
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], loop=0,
                   duration=[duration_ms] * (len(frames) - 1) + [hold_last_ms])
    atomic_write_bytes(path, buf.getvalue())


def score(model: VariationalAutoencoder, x: torch.Tensor, k: int) -> dict:
    """Valid-split numbers in nats per image under p(x|z) = N(f(z), I), p(z) = N(0, I)."""
    vae = model.as_vae()
    res = vaekit.evaluate(vae, x, iw_samples=k, seed=0)
    activity = unit_activity(vae, x)
    with torch.no_grad():
        torch.manual_seed(0)
        f, mu, lv = model(x)
        tutorial_loss = float(model.loss(f, x, mu, lv)) / x.shape[0]
    return {"elbo": res["elbo"], "reconstruction": res["reconstruction"], "kl": res["kl"], "nll": res["nll"],
            "nll_stderr": res["nll_stderr"], "iw_samples": k, "n_images": res["n_images"],
            "active_dims": int((activity > 0.01).sum()), "activity": [round(a, 4) for a in activity.tolist()],
            "tutorial_loss_per_image": tutorial_loss}


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    try:
        train = load_dataset(args.data, args.split, args.data_dir, download=args.data_dir is None)
        valid = (load_dataset(args.data, "valid", args.data_dir, download=args.data_dir is None)
                 if args.evaluate else None)
    except vaekit.VaekitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    x = train.x.flatten(1)  # [N, 784] grey levels in [0, 1], as the assignment fed them
    torch.manual_seed(args.seed)
    model = VariationalAutoencoder(ndims=x.shape[1], nlatent=args.nlatent)
    draw = args.nlatent == 2
    frames = [frame(model, 0, None)] if draw else []
    batches = batch_stream(x.shape[0], args.batch_size, seed=args.seed)
    print(f"training the tutorial's VAE ({x.shape[1]}-100-50-{args.nlatent}) on {args.data} {args.split} "
          f"({x.shape[0]} images), {args.steps} steps of {args.batch_size}, objective: {args.objective}")
    train_seconds, losses = 0.0, []
    for step in range(1, args.steps + 1):
        t0 = time.perf_counter()
        batch_x = x[next(batches)]
        if args.objective == "tutorial":
            losses.append(model.train_step(batch_x, learning_rate=args.learning_rate))
        else:
            loss = model.elbo_loss(batch_x)
            model.update_op(loss, args.learning_rate)
            losses.append(float(loss.detach()))
        train_seconds += time.perf_counter() - t0
        if draw and (step % args.frame_every == 0 or step == args.steps):
            frames.append(frame(model, step, float(np.mean(losses[-args.frame_every:]))))
    summary = {"data": args.data, "split": args.split, "n_train": int(x.shape[0]), "steps": args.steps,
               "batch_size": args.batch_size, "learning_rate": args.learning_rate, "nlatent": args.nlatent,
               "objective": args.objective, "seed": args.seed, "train_seconds": round(train_seconds, 2),
               "final_loss": float(np.mean(losses[-100:])),
               "loss_units": "tutorial loss per batch" if args.objective == "tutorial" else "-ELBO nats per image",
               "torch": torch.__version__, "threads": torch.get_num_threads()}
    out.mkdir(parents=True, exist_ok=True)
    if draw:
        latent_grid_image(latent_grid(model)).save(buf := io.BytesIO(), format="PNG")
        atomic_write_bytes(out / "latent_space_vae.png", buf.getvalue())
        write_gif(frames, out / "vae.gif")
    if args.evaluate:
        summary["valid"] = score(model, valid.x.flatten(1), args.evaluate)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    print(f"trained in {train_seconds:.1f} s; mean loss of the last {min(100, args.steps)} steps "
          f"{summary['final_loss']:.2f} "
          f"({summary['loss_units']})")
    if args.evaluate:
        v = summary["valid"]
        print(f"valid ({v['n_images']} images, nats per image): ELBO {v['elbo']:.2f}, KL {v['kl']:.2f}, "
              f"NLL {v['nll']:.2f} ± {v['nll_stderr']:.2f} (K={args.evaluate}), active dims "
              f"{v['active_dims']} of {args.nlatent}")
    print(f"wrote {out}/" + (" latent_space_vae.png, vae.gif, summary.json" if draw else
                             " summary.json (no grid or animation: they need --nlatent 2)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
