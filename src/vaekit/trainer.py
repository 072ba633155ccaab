"""One run's training, step by step: the per-batch step, the pass over an epoch, and the
:class:`Trainer` that owns a run's model, optimiser, objective and state between epochs.

Batches are contiguous slices of a training tensor shuffled once per epoch in memory (no
DataLoader, no per-sample Python work); the running sums stay on the device and are read
only when the progress bar refreshes. :mod:`vaekit.train` drives the epochs.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from . import checkpoint as ckpt
from .averaging import WeightAverage, averaged
from .config import RunConfig
from .data import Batch, Dataset, batch, binarize, dequantize, to_unit
from .distributed import Context, local_rows, shard
from .errors import CheckpointError, DivergenceError, VaekitError
from .evaluate import elbo_sums
from .grad_step import GradStep
from .models import VAE
from . import objectives
from .objectives import ELBO, BatchTerms, kl_warmup, reported
from . import schedule
from .optim import fused_adam_step, make_optimizer
from .trainer_state import TrainerState, save_state


def _now() -> float:
    """The trainer's clock (seconds): what the time budget and the budget clock count."""
    return time.perf_counter()


AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # precision -> autocast dtype
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bf16 arithmetic


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()  # not Linux, or unreadable: unknown


def auto_precision(device: torch.device | str) -> tuple[str, str]:
    """What ``precision = "auto"`` resolves to on ``device``, and why: bf16 where the hardware computes it
    natively (a CUDA GPU with bf16; a CPU with AVX512-BF16 or AMX, read from /proc/cpuinfo), fp32
    elsewhere, and fp32 whenever it cannot tell. Measured on the quality preset (docs/benchmarks.md,
    "Precision"): bf16 reached the same valid NLL per epoch as fp32 within the seed-to-seed spread."""
    device = torch.device(device)
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return "bf16", "this GPU computes bf16 natively"
        return "fp32", "this GPU has no native bf16"
    if device.type == "cpu":
        found = sorted(_cpu_flags().intersection(CPU_BF16_FLAGS))
        if found:
            return "bf16", f"this CPU computes bf16 natively ({', '.join(found)})"
        return "fp32", "no native bf16 found on this CPU"
    return "fp32", f"bf16 is not known to pay on {device.type}"


def make_objective(cfg: RunConfig):
    """The objective a config trains (``train.objective``: its name and options, e.g. the ELBO's ``beta``,
    ``free_bits`` and ``n_samples``, the IWAE's K), from :data:`vaekit.objectives.OBJECTIVES`."""
    return objectives.make_objective(cfg.train.objective)


COMPILE_MIN_IMAGES = 5_000_000  # images trained on (epochs x training images) from which compiling pays


def auto_compile(precision: str, device: torch.device | str, images: int) -> tuple[bool, str]:
    """Whether ``compile=None`` (auto) compiles the step, and why. Measured on 2-core CPUs
    (docs/benchmarks.md, "Compile"): compiling takes seconds once and fuses the elementwise work, which
    pays in bf16 (the products are cheap there) and in float32 on an AVX2 CPU (+7-13% on the 784-400-20
    step, +15% on the quality preset's; nothing measurable in float32 on an AVX512 CPU, so no loss there);
    so: a run long enough to earn the compilation back, float32 only on a CPU (not measured on a GPU),
    and the compiler torch.compile needs on a CPU."""
    device = torch.device(device)
    if precision == "fp32" and device.type != "cpu":
        return False, f"no gain measured in fp32 on {device.type}"
    if images < COMPILE_MIN_IMAGES:
        return False, f"{images:,} images to train on, under the {COMPILE_MIN_IMAGES:,} from which it pays"
    if device.type not in ("cpu", "cuda"):
        return False, f"not measured on {device.type}"
    if device.type == "cpu" and not any(shutil.which(c) for c in ("cc", "gcc", "g++", "clang", "c++")):
        return False, "no C++ compiler found, which torch.compile needs on a CPU"
    return True, f"{precision}, {images:,} images to train on"


def make_step(model: torch.nn.Module, objective=None, precision: str = "fp32", compile: bool = False):
    """The per-batch function of the training step: :class:`~vaekit.data.Batch` ``-> BatchTerms`` (sums over the
    batch).

    ``model`` is the VAE, or its ``DistributedDataParallel`` wrapper. ``precision="bf16"`` or ``"fp16"`` runs it
    under autocast (the products; the model returns float32); the precision is concrete here: ``"auto"`` is
    resolved once, before (:func:`auto_precision`; a run does it in :mod:`vaekit.plan`). ``compile=True`` hands
    it to ``torch.compile``, which fuses its elementwise work (about +20% with bf16 on a 2-core CPU, nothing
    measurable in float32).
    """
    objective = objective or ELBO()
    if precision not in AUTOCAST_DTYPES:
        raise VaekitError(f"make_step takes precision fp32, bf16 or fp16, got {precision!r}; resolve \"auto\" "
                          "first with vaekit.trainer.auto_precision(device)")
    dtype = AUTOCAST_DTYPES[precision]

    def terms(xb: torch.Tensor, yb: torch.Tensor | None = None) -> BatchTerms:
        with torch.autocast(device_type=xb.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            # labels only to a model conditioned on them: an objective for plain models may take (model, x) alone
            return objective.terms(model, xb) if yb is None else objective.terms(model, xb, yb)

    inner = torch.compile(terms) if compile else terms  # compiled on tensors: no guards on the Batch itself

    def step(b: Batch) -> BatchTerms:
        return inner(b.x) if b.y is None else inner(b.x, b.y)

    return step


def training_step(model: torch.nn.Module, objective=None, precision: str = "fp32", compile: bool = False,
                  world_size: int = 1, net: torch.nn.Module | None = None):
    """The step a run trains ``model`` with, for :func:`train_epoch`: compiled in float32 on a CPU by one process,
    the step that returns its own gradients (:class:`vaekit.grad_step.GradStep`, measured faster there); else
    :func:`make_step` over ``net`` (the model's DistributedDataParallel wrapper, if any), whose loss the loop
    differentiates."""
    objective = objective or ELBO()
    if compile and GradStep.usable(objective, precision, world_size, next(model.parameters()).device):
        return GradStep(model, objective, AUTOCAST_DTYPES[precision])
    return make_step(net if net is not None else model, objective, precision, compile)


FINITE_CHECK_EVERY = {"cpu": 1}  # steps between host reads of the finiteness flag, by device type (else 50)
FINITE_CHECK_DEFAULT = 50


def finite_check_every(device: torch.device | str) -> int:
    """How often (in steps) the trainer reads on the host whether a loss or gradient norm stopped being finite.
    Every step on a CPU, where the read costs microseconds and the run stops before the weights are touched;
    every :data:`FINITE_CHECK_DEFAULT` steps elsewhere, where each read waits for the device to finish its
    queue: between reads, a non-finite step and every step after it leave the weights and the optimiser's
    state as they were (on the device, through the fused optimiser's ``found_inf``), so the run stops with
    the weights of the step before and names that step exactly."""
    return FINITE_CHECK_EVERY.get(torch.device(device).type, FINITE_CHECK_DEFAULT)


class _StepCheck:
    """The finiteness check read on the host at every step: a non-finite loss (or, with clipping, gradient norm)
    raises before the optimiser touches the weights; with several processes all agree on it at that step."""

    def __init__(self, ctx: Context, scaler: torch.amp.GradScaler, where: tuple[int, int]):
        self.ctx, self.scaler, self.where = ctx, scaler, where

    def loss(self, k: int, loss: torch.Tensor) -> None:
        bad = not torch.isfinite(loss)  # one host read; on a CPU it costs microseconds
        if self.ctx.any(bad):  # with several processes, agreed by all
            raise DivergenceError(f"the loss became {loss.item() if bad else 'not finite on another process'} "
                                  f"at epoch {self.where[0]}, step {self.where[1] + k}")

    def norm(self, k: int, norm: torch.Tensor) -> None:
        if not self.scaler.is_enabled() and not torch.isfinite(norm):  # an enabled scaler skips overflowed steps
            raise DivergenceError(f"the gradient norm became {norm.item()} at epoch {self.where[0]}, "
                                  f"step {self.where[1] + k}")

    def before_update(self) -> None:
        pass

    def after_step(self, k: int) -> None:
        pass

    def end(self) -> None:
        pass

    def close(self) -> None:
        pass


class _DeferredCheck:
    """The same check, recorded on the device and read on the host every ``every`` steps and at the epoch's end.

    Once a step is not finite, every later update of the epoch is skipped on the device: the fused optimiser
    reads ``found_inf`` (the protocol of torch's gradient scaler) and leaves weights, moments and step counts
    untouched, so the error names the first bad step with the weights of the step before."""

    def __init__(self, optimizer: torch.optim.Optimizer, device: torch.device, every: int, where: tuple[int, int]):
        self.optimizer, self.every, self.where = optimizer, every, where
        self.first = torch.full((), -1, dtype=torch.int64, device=device)  # that step (1-based in the epoch)
        self.value = torch.zeros((), dtype=torch.float32, device=device)  # the loss or norm it had
        self.what = torch.zeros((), dtype=torch.int64, device=device)  # 0: the loss, 1: the gradient norm

    @staticmethod
    def usable(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, ctx: Context) -> bool:
        """Only a fused optimiser skips an update on the device; a gradient scaler already uses ``found_inf``;
        several processes agree on a stop step by step."""
        return bool(optimizer.defaults.get("fused")) and not scaler.is_enabled() and ctx.world_size == 1

    def _record(self, k: int, value: torch.Tensor, what: int) -> None:
        new = ~torch.isfinite(value.detach()) & (self.first < 0)
        self.first = torch.where(new, k, self.first)
        self.value = torch.where(new, value.detach().float(), self.value)
        self.what = torch.where(new, what, self.what)

    def loss(self, k: int, loss: torch.Tensor) -> None:
        self._record(k, loss, 0)

    def norm(self, k: int, norm: torch.Tensor) -> None:
        self._record(k, norm, 1)

    def before_update(self) -> None:
        self.optimizer.found_inf = (self.first >= 0).float()  # 1.0 from the first bad step on: skip

    def after_step(self, k: int) -> None:
        if k % self.every == 0:
            self.end()

    def end(self) -> None:
        first = int(self.first)  # the host read
        if first >= 0:
            name = "loss" if int(self.what) == 0 else "gradient norm"
            raise DivergenceError(f"the {name} became {self.value.item()} at epoch {self.where[0]}, "
                                  f"step {self.where[1] + first}")

    def close(self) -> None:
        self.optimizer.__dict__.pop("found_inf", None)


def train_epoch(step, objective, optimizer: torch.optim.Optimizer, x: torch.Tensor, batch_size: int,
                grad_clip: float = 0.0, where: tuple[int, int] = (0, 0), bar: tqdm | None = None,
                ctx: Context | None = None, scaler: torch.amp.GradScaler | None = None,
                n_global: int | None = None, y: torch.Tensor | None = None,
                check_every: int = 1, average: WeightAverage | None = None) -> tuple[dict[str, torch.Tensor], int]:
    """One pass over ``x`` (already shuffled) in contiguous batches: the sums of what the objective reports
    (:func:`vaekit.objectives.reported`: the ELBO, reconstruction, KL and its own terms), by name, on the device,
    and the number of steps.

    ``step`` (from :func:`make_step`) gives a batch's terms; ``objective.loss`` what to minimise.
    A non-finite loss (or, with ``grad_clip``, gradient norm) raises :class:`DivergenceError`
    before the optimiser touches the weights; ``where`` is (epoch, steps before it), for the
    message. Several processes: ``batch_size`` is the global batch over ``n_global`` images and
    ``x`` holds this rank's rows (:func:`vaekit.distributed.local_rows`); each rank's loss is
    scaled so that the averaged gradient is the whole batch's; the sums are this rank's.
    ``scaler``: a gradient scaler (enabled for fp16) that skips overflowed steps. ``y``: labels
    in the order of ``x``, for a conditional model. ``check_every`` > 1 (:func:`finite_check_every`) reads
    the finiteness on the host that often instead of every step, where the optimiser is fused, one process
    trains and no gradient scaler runs (else every step): the first non-finite step and all after it change
    nothing, and the error names that step, as the step-by-step check does. ``average``: a
    :class:`vaekit.averaging.WeightAverage` updated after every optimiser step.
    """
    ctx = ctx or Context()
    world, rank = ctx.world_size, ctx.rank
    scaler = scaler or torch.amp.GradScaler(x.device.type, enabled=False)
    n = x.shape[0] if n_global is None else n_global
    if world == 1 and n != x.shape[0]:
        raise ValueError(f"one process needs all {n} rows, got {x.shape[0]}")
    names, totals = None, None
    params = [p for group in optimizer.param_groups for p in group["params"]]
    bar = bar if bar is not None else tqdm(disable=True)
    check = _DeferredCheck(optimizer, x.device, check_every, where) \
        if check_every > 1 and _DeferredCheck.usable(optimizer, scaler, ctx) else _StepCheck(ctx, scaler, where)
    steps = pos = 0
    try:
        for i in range(0, n, batch_size):
            b = min(batch_size, n - i)  # this step's global batch; this rank's share of it follows
            mine = shard(b, world, rank)
            rows = slice(pos, pos + mine.stop - mine.start)
            xb = batch(x[rows], y[rows] if y is not None else None)  # uint8 becomes [0, 1] a batch at a time
            pos = rows.stop
            if getattr(step, "computes_gradients", False):  # vaekit.grad_step: the gradients come with the loss
                terms, loss = step(xb, objective, b / world)
                check.loss(steps + 1, loss)
            else:
                terms = step(xb)
                loss = objective.loss(terms, b / world)
                check.loss(steps + 1, loss)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
            if grad_clip:
                scaler.unscale_(optimizer)
                check.norm(steps + 1, torch.nn.utils.clip_grad_norm_(params, grad_clip))
            check.before_update()
            if scaler.is_enabled() or not fused_adam_step(optimizer):  # the same kernel, less Python
                scaler.step(optimizer)
            scaler.update()
            if average is not None:
                average.update()
            steps += 1
            check.after_step(steps)
            report = reported(objective, terms)
            if totals is None:  # the names an objective reports are known at its first step
                names = list(report)
                totals = torch.zeros(len(names), dtype=torch.float32 if x.device.type == "mps" else torch.float64,
                                     device=x.device)
            totals += torch.stack([report[k] for k in names]).detach()
            bar.update(1)
            if bar.n % 25 == 0 and not bar.disable:  # one host read per 25 steps, for the display
                bar.set_postfix(elbo=f"{totals[0].item() / min(n, i + batch_size) * world:.2f}")
        check.end()  # the epoch's last steps, read
    finally:
        check.close()
    return dict(zip(names, totals)) if totals is not None else {}, steps


def _diverged(e: Exception, epoch: int, run_dir: Path, cfg: RunConfig, lr: float) -> DivergenceError:
    kept = f"the last good checkpoint (epoch {epoch - 1}) is kept in {run_dir}" if epoch > 1 \
        else "no epoch finished, so there is no checkpoint"
    hint = "--precision fp32, " if cfg.train.precision == "fp16" else ""
    return DivergenceError(f"training diverged: {e}; {kept}. Try a lower --lr (now {lr:g}), {hint}"
                           "--warmup-epochs, or --grad-clip (e.g. 10)")


class Trainer:
    """One run's training: the model, optimiser, objective and :class:`TrainerState`, epoch by epoch."""

    def __init__(self, cfg: RunConfig, run_dir: Path, ctx: Context, model: VAE, train_ds: Dataset,
                 valid_ds: Dataset, plan, progress: bool | None, log: Callable[[str], None]):
        """``plan``: the run's :class:`vaekit.plan.RunPlan` (precision, compile, labels), resolved once."""
        self.cfg, self.run_dir, self.ctx, self.model, self.log = cfg, run_dir, ctx, model, log
        self.train_ds, self.valid_ds, self.progress = train_ds, valid_ds, progress
        tc = cfg.train
        self.data_gen = torch.Generator().manual_seed(tc.seed)  # the same on every rank: one shuffle for all
        if ctx.rank:  # every rank starts from the same weights, then draws its own noise
            torch.manual_seed(tc.seed + 1_000_003 * ctx.rank)
        self.optimizer = make_optimizer(cfg, model)
        self.plan = plan
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=plan.precision == "fp16")
        self.objective = make_objective(cfg)
        self.state = TrainerState()
        self.average = WeightAverage(model, tc.ema) if tc.ema else None  # --ema: what validation and best see
        self.net = model
        mine = shard(len(valid_ds), ctx.world_size, ctx.rank)
        self.valid_x = to_unit(valid_ds.x[mine].to(ctx.device))
        self.labels = plan.labels  # labels travel only to a model that has a part conditioned on them
        if self.labels and (train_ds.labels is None or valid_ds.labels is None):
            raise VaekitError(f"this model is conditioned on labels but data set '{train_ds.name}' has none; "
                              "choose a data set with labels")
        self.valid_y = valid_ds.labels[mine].to(ctx.device) if self.labels else None

    def wrap(self) -> None:
        """Several processes: DDP, with gradients as views into the all-reduce buckets (+7% on 2 CPU processes)."""
        if self.ctx.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.ctx.device] if self.ctx.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids, gradient_as_bucket_view=True)
        self.step = training_step(self.model, self.objective, self.plan.precision, self.plan.compile,
                                  self.ctx.world_size, self.net)

    def shuffled(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This epoch's training images (re-binarized if dynamic) and labels (for a conditional model),
        shuffled; this rank's rows only."""
        n, cfg = len(self.train_ds), self.cfg
        x = self.train_ds.x
        if cfg.data.binarize == "dynamic":
            x = binarize(to_unit(x), generator=self.data_gen)
        if cfg.data.dequantize == "uniform":  # fresh noise each epoch, like the dynamic binarization
            x = dequantize(to_unit(x), cfg.pixel_levels, generator=self.data_gen)
        order = torch.randperm(n, generator=self.data_gen)  # contiguous batches after one shuffle
        if self.ctx.distributed:  # the same shuffle on every rank; each moves only its rows to its device
            order = order[local_rows(n, cfg.train.batch_size, self.ctx.world_size, self.ctx.rank)]
        y = self.train_ds.labels[order].to(self.ctx.device) if self.labels else None
        return x[order].to(self.ctx.device), y

    def epoch(self, epoch: int) -> dict[str, Any]:
        """Train one epoch and measure the valid ELBO; the metrics row."""
        cfg, ctx, n = self.cfg, self.ctx, len(self.train_ds)
        t0 = _now()
        pos = schedule.position(cfg.train, epoch, self.state.elapsed, self.state.last_epoch_seconds)
        lr = schedule.learning_rate(cfg.train, pos)
        objective = kl_warmup(self.objective, schedule.warmup_position(cfg.train, epoch, pos), cfg.train.warmup_epochs)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x, y = self.shuffled()
        with tqdm(total=math.ceil(n / cfg.train.batch_size), desc=f"epoch {epoch}/{cfg.train.epochs}", unit="batch",
                  leave=False, disable=(not self.progress) if self.progress is not None else None) as bar:
            try:
                sums, steps = train_epoch(self.step, objective, self.optimizer, x, cfg.train.batch_size,
                                          cfg.train.grad_clip, (epoch, self.state.step), bar, ctx, self.scaler, n,
                                          y, finite_check_every(ctx.device), self.average)
            except DivergenceError as e:  # every rank stops at the same step
                raise ctx.everywhere(_diverged(e, epoch, self.run_dir, cfg, lr)) from None
        self.state.step += steps
        train = dict(zip(sums, (ctx.all_reduce_sum(torch.stack(list(sums.values()))) / n).tolist()))
        train_elbo = train["elbo"]
        if not math.isfinite(train_elbo):
            raise ctx.everywhere(DivergenceError(  # the summed ELBO: the same on every rank
                f"training diverged in epoch {epoch} (the ELBO became {train_elbo}); the last good "
                f"checkpoint is kept in {self.run_dir}: try a lower --lr"))
        seconds = _now() - t0
        with averaged(self.average):  # with --ema, the averaged weights are the ones validated
            valid = ctx.all_reduce_sum(elbo_sums(self.model, self.valid_x, y=self.valid_y))
        valid = (valid / len(self.valid_ds)).tolist()
        row = {"epoch": epoch, "step": self.state.step, **{f"train_{k}": v for k, v in train.items()},
               "valid_elbo": valid[0], "valid_reconstruction": valid[1],
               "valid_kl": valid[2], "lr": lr, "kl_weight": objective.kl_weight,
               "progress": pos.fraction(cfg.train.epochs),
               "epoch_seconds": seconds, "images_per_second": n / seconds, "_t0": t0}
        return row

    def checkpoint(self, row: dict[str, Any]) -> None:
        """Record the epoch: the best weights if they improved, the metrics, then the trainer state."""
        st, ctx = self.state, self.ctx
        improved = row["valid_elbo"] > st.best
        if improved:
            st.best, st.best_epoch = row["valid_elbo"], row["epoch"]
        st.epoch = row["epoch"]
        st.history.append(row)
        rng = st.rng_states(ctx, self.data_gen)  # collective: before rank 0 writes
        failed = None
        if ctx.is_main:
            try:
                self._write(row, rng, improved)
            except OSError as e:  # a full disk, a read-only or vanished folder: the previous files stay
                failed = e
        if ctx.any(failed is not None):  # with several processes, every rank stops here together
            raise ctx.everywhere(_unsaved(failed, st.epoch, self.run_dir))

    def _write(self, row: dict[str, Any], rng, improved: bool) -> None:
        st = self.state
        if improved:
            with averaged(self.average):  # the weights validated
                ckpt.save_weights(self.run_dir / ckpt.BEST_FILE, self.model, epoch=st.epoch, valid_elbo=st.best)
        st.last_epoch_seconds = _now() - row.pop("_t0")
        st.elapsed += st.last_epoch_seconds
        row["elapsed_seconds"] = st.elapsed
        # metrics first: a kill between the two files leaves a row that resume drops and redoes
        ckpt.atomic_write_text(self.run_dir / ckpt.METRICS_FILE, "".join(json.dumps(h) + "\n" for h in st.history))
        save_state(self.run_dir / ckpt.LAST_FILE, self, rng)


def _unsaved(e: OSError | None, epoch: int, run_dir: Path) -> CheckpointError:
    what = f"{e.strerror or e} ({e.filename})" if isinstance(e, OSError) and e.filename else str(e or "on rank 0")
    kept = f"the checkpoint of epoch {epoch - 1} is intact" if epoch > 1 else "no epoch had been saved yet"
    return CheckpointError(f"could not save epoch {epoch} in {run_dir}: {what}; {kept}. Free some space or make "
                           f"the folder writable, then continue with --resume --out {run_dir}")


__all__ = ["AUTOCAST_DTYPES", "FINITE_CHECK_EVERY", "Trainer", "auto_compile", "auto_precision", "finite_check_every",
           "make_objective", "make_step", "train_epoch", "training_step"]
