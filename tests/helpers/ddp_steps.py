"""Run a few training steps of vaekit's loop, alone or under torchrun, and save the weights.

    python tests/helpers/ddp_steps.py OUT_DIR                       # one process
    torchrun --standalone --nproc_per_node=2 tests/helpers/ddp_steps.py OUT_DIR [nan]

The sampling noise is switched off (z = mu), so one process and several must produce
the same weights up to floating-point summation order: that checks the sharding of each
global batch and the scaling of the per-rank loss, which the noise would otherwise hide.
Each rank writes OUT_DIR/rank{r}.safetensors. With ``nan``, the last rank's share of the
third batch is NaN and each rank writes the DivergenceError it got to OUT_DIR/diverged{r}.txt.
"""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

import vaekit.models.distributions as dist
from vaekit.config import RunConfig
from vaekit.distributed import local_rows, setup, teardown
from vaekit.errors import DivergenceError
from vaekit.models import build_model
from vaekit.objectives import ELBO
from vaekit.train import make_optimizer, make_step, train_epoch


def main() -> None:
    out = Path(sys.argv[1])
    dist.DiagonalNormal.rsample = lambda self, sample_shape=(): self.mu.expand(torch.Size(sample_shape) + self.mu.shape)
    ctx = setup("cpu")
    torch.manual_seed(0)
    cfg = RunConfig.from_dict({"data": {"name": "digits"}, "model": {"latent_dim": 3, "hidden": [16]},
                               "train": {"batch_size": 10, "lr": 1e-2}})
    model = build_model(cfg.model, (1, 8, 8))
    opt = make_optimizer(cfg, model)
    net = model
    if ctx.distributed:
        net = torch.nn.parallel.DistributedDataParallel(model, gradient_as_bucket_view=True)  # as vaekit.train
    x = torch.bernoulli(torch.rand(47, 64, generator=torch.Generator().manual_seed(1)))  # last batch: 7 images
    out.mkdir(parents=True, exist_ok=True)
    if len(sys.argv) > 2:  # "nan-on-last-rank": that rank's share of the third batch is NaN
        x[20 + 5 : 30] = float("nan")
        try:
            train_epoch(make_step(net), ELBO(), opt, x[local_rows(47, 10, ctx.world_size, ctx.rank)], 10,
                        ctx=ctx, n_global=47)
        except DivergenceError as e:
            (out / f"diverged{ctx.rank}.txt").write_text(str(e))
        teardown(wait=True)  # every rank gets here: leave together
        return
    train_epoch(make_step(net), ELBO(), opt, x[local_rows(47, 10, ctx.world_size, ctx.rank)], 10,
                ctx=ctx, n_global=47)  # this rank's rows only, as vaekit.train
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / f"rank{ctx.rank}.safetensors"))
    teardown(wait=True)


if __name__ == "__main__":
    main()
