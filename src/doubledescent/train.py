"""Training a group: every run that shares a network shape, vectorized in one process.

The whole dataset lives on the device; each run draws its own minibatch order from its own
generator, so a run's numbers do not depend on which other runs share its group. Runs with
the same seed share initialization and minibatch order across regularizer variants, which
makes the comparison between regularizers paired.
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from doubledescent import (
    architectures,
    augment,
    checkpoint,
    models,
    optim,
    regularizers,
    resources,
    reuse,
    streams,
)
from doubledescent.config import Run, group_id
from doubledescent.data import Arrays, nested_subset, noisy_label_error
from doubledescent.errors import UserError
from doubledescent.models.layers import Mask
from doubledescent.progress import Watch
from doubledescent.regularizers.dropout_masks import BitStream, TorchStream
from doubledescent.resources import EVAL_CHUNK
from doubledescent.specs import GroupSpec, ModelSpec, TrainingSettings


def generator(seed: int, stream: str, device: str | torch.device = "cpu") -> torch.Generator:
    """A run's random stream for one purpose (see doubledescent.streams), as torch's."""
    state = streams.seed_sequence(seed, stream).generate_state(1, np.uint64)[0]
    return torch.Generator(device=device).manual_seed(int(state) & ((1 << 63) - 1))


def mask_stream(seed: int, device) -> BitStream | TorchStream:
    """A run's `dropout` stream (checkpointed with the run): numpy's bits on the CPU, where
    torch's generator is the slower; a torch generator on a GPU, which draws on the card."""
    if torch.device(device).type == "cpu":
        return BitStream(seed)
    return torch_mask_stream(seed, device)


def torch_mask_stream(seed: int, device="cpu") -> TorchStream:
    """The GPU's kind of mask stream, on any device (benchmarks and tests use it on the CPU)."""
    return TorchStream(generator(seed, "dropout", device))


def resolve_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("config asks for device 'cuda' but torch sees no CUDA device")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(requested)


@dataclass
class Tensors:
    """A prepared dataset as device tensors."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    y_train_clean: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    noisy: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor

    @classmethod
    def from_arrays(
        cls, a: Arrays, device, dtype=torch.float32, shape: tuple[int, ...] | None = None
    ) -> Tensors:
        """Inputs reshaped to (N, *shape), the layout the model takes (None: as stored)."""

        def t(v, dt=None):
            return torch.as_tensor(v, dtype=dt).to(device)

        def x(v):
            return t(v.reshape(len(v), *(shape or v.shape[1:])), dtype)

        return cls(
            x(a.x_train),
            t(a.y_train),
            t(a.y_train_clean),
            x(a.x_test),
            t(a.y_test),
            t(a.noisy_mask),
            x(a.x_val),
            t(a.y_val),
        )


def input_shape(spec: GroupSpec, arrays: Arrays) -> tuple[int, ...]:
    """One sample as the spec's model takes it: e.g. 40 or C*H*W for the MLP, (C, H, W)
    for the CNNs, (1, 40) for the MNIST-1D CNN."""
    return models.input_shape(spec.model.name, arrays.x_train.shape[1:])


@dataclass
class Group:
    """The training state of a group: model, optimizer, and per-run random streams."""

    runs: list[Run]
    training: TrainingSettings
    model: nn.Module  # a stacked model (see doubledescent.models)
    optimizer: optim.SGD | optim.Adam
    # The training side of the regularizers that some run uses (doubledescent.regularizers).
    hooks: list[regularizers.Hooks]
    mask: Mask | None  # the models' source of dropout masks; None where no run drops
    order_gens: list[torch.Generator]
    dropout_gens: list[BitStream | TorchStream]  # the regularizers' mask streams
    augment_gens: list[torch.Generator]
    diverged_epoch: list[int | None] = field(default_factory=list)
    step: int = 0  # gradient steps taken, for the learning-rate schedule and the budget
    # Runs that stopped updating (training.stop_at_zero_train_error): (R,) booleans, on the
    # CPU so that checking them each step never waits for the GPU.
    frozen: torch.Tensor | None = None
    bf16: bool = False  # forward passes of training under bfloat16 autocast
    # The model's hand-written forward and backward (models.mlp) instead of autograd's.
    by_hand: bool = False
    eval_rows: int = EVAL_CHUNK  # rows per evaluation forward pass (resources.eval_rows)


def uses_bf16(precision: str, model: str, device: torch.device) -> bool:
    """`training.precision`: `bf16` is bfloat16 autocast on any device (so the CPU tests run
    the GPU's code), `fp32` never, `auto` bf16 for the conv nets on CUDA only (tensor cores;
    the MLPs here are too small to gain, and a CPU without bf16 units would only lose)."""
    if precision == "auto":
        return device.type == "cuda" and architectures.family(model).inputs != "vector"
    return precision == "bf16"


def learning_rate(training: TrainingSettings, step: int) -> float:
    """The learning rate of gradient step `step` (counted from 0) under `training.schedule`."""
    lr, schedule = training.lr, training.schedule
    if schedule == "constant":
        return lr
    if schedule == "inverse_sqrt":
        return lr / math.sqrt(1 + step // training.schedule_steps)
    if schedule == "step":
        return lr * training.gamma ** (step // training.schedule_steps)
    raise ValueError(f"unknown schedule {schedule!r}")


def make_group(
    spec: GroupSpec,
    runs: list[Run],
    input_shape: tuple[int, ...],
    num_classes: int,
    device,
    dtype=torch.float32,
) -> Group:
    """Build the stacked model, initialize each run from its own seed, set up the optimizer."""
    model = stacked_model(spec.model, runs, input_shape, num_classes)
    for i, run in enumerate(runs):
        model.init_run(i, generator(run.seed, "init"))
    model.to(device=device, dtype=dtype)
    tr = spec.training
    dropout_gens = [mask_stream(r.seed, device) for r in runs]
    hooks = regularizers.setup(runs, regularizers.Context(tr, model, device, dtype, dropout_gens))
    masks = [h.mask for h in hooks if h.mask is not None]
    if len(masks) > 1:
        raise ValueError("two regularizers draw masks; the models take one source of them")
    mask = masks[0] if masks else None
    bf16 = uses_bf16(tr.precision, spec.model.name, torch.device(device))
    return Group(
        runs=runs,
        training=tr,
        model=model,
        optimizer=optim.make(model.parameters(), tr),
        hooks=hooks,
        mask=mask,
        order_gens=[generator(r.seed, "order") for r in runs],
        dropout_gens=dropout_gens,
        augment_gens=[generator(r.seed, "augment", device) for r in runs],
        diverged_epoch=[None] * len(runs),
        frozen=torch.zeros(len(runs), dtype=torch.bool),
        bf16=bf16,
        by_hand=trains_by_hand(model, mask, bf16),
        eval_rows=resources.eval_rows(
            spec.model.to_dict(), spec.width, len(runs), torch.device(device).type
        ),
    )


def trains_by_hand(model: nn.Module, mask, bf16: bool) -> bool:
    """Whether the step takes the model's hand-written backward: where it has one that
    applies, in full precision (autocast is autograd's), with dropout masks it can apply
    in place (a regularizer's own mask source may not)."""
    has = getattr(model, "has_hand_backward", None)
    return bool(has and has()) and not bf16 and (mask is None or hasattr(mask, "apply_"))


def stacked_model(
    model: ModelSpec, runs: list[Run], input_shape: tuple[int, ...], num_classes: int
) -> nn.Module:
    """The runs of one shape (a group) stacked; runs of several (a pack of groups,
    doubledescent.packing) zero-padded to the widest."""
    spec = model.to_dict()
    shapes = {(r.width, r.batchnorm) for r in runs}
    if len(shapes) == 1:
        ((width, batchnorm),) = shapes
        return models.build(spec, len(runs), input_shape, num_classes, width, batchnorm)
    widths, norms = [r.width for r in runs], [r.batchnorm for r in runs]
    return models.build_padded(spec, widths, norms, input_shape, num_classes)


def epoch_order(group: Group, n: int, device) -> torch.Tensor:
    """Each run's own random permutation of the training set: (R, n). Drawn on the CPU (the
    streams are CPU generators, so a run's order is the same on every device) and, for a GPU,
    copied from pinned memory without blocking: the host never waits on the device."""
    order = torch.stack([torch.randperm(n, generator=g) for g in group.order_gens])
    if torch.device(device).type == "cuda":
        return order.pin_memory().to(device, non_blocking=True)
    return order


def sample_losses(logits: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """Per-run, per-sample losses (R, N) of logits (R, N, classes); labels (R, N) or shared (N,)."""
    if loss == "cross_entropy":
        # Classes as dim 1, (R, classes, N): CPU log-softmax over a short last dim (10
        # classes) is ~10x slower than over a strided one; this was a third of a small step.
        return F.cross_entropy(logits.transpose(1, 2), y.expand(logits.shape[:2]), reduction="none")
    if loss == "mse":
        # Belkin et al.'s squared loss: summed over classes, against one-hot targets.
        onehot = F.one_hot(y, logits.shape[-1]).to(logits.dtype)
        return (logits - onehot).square().sum(-1)
    raise ValueError(f"unknown loss {loss!r}")


def train_step(group: Group, xb: torch.Tensor, yb: torch.Tensor) -> None:
    """One optimizer step for all runs at once."""
    model = group.model
    group.optimizer.zero_grad()
    if group.by_hand:
        logits, inputs = model.train_forward(xb, group.mask)
        model.train_backward(inputs, loss_gradient(group, logits, yb), group.mask)
    else:
        # Autocast on the device the batch lives on: the same code path on CUDA and the CPU.
        with torch.autocast(xb.device.type, dtype=torch.bfloat16, enabled=group.bf16):
            logits = model(xb, group.mask)
        logits = logits.to(xb.dtype)  # the loss in the data's precision, whatever autocast did
        training_loss(group, logits, yb).backward()
    lr = learning_rate(group.training, group.step)
    group.optimizer.lr = lr
    for hook in group.hooks:
        hook.update(lr)
    group.optimizer.step()
    group.step += 1


def training_loss(group: Group, logits: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """The sum of the runs' mean training losses: each run gets exactly the gradient of its
    own loss."""
    losses = sample_losses(logits, yb, group.training.loss)
    for hook in group.hooks:
        losses = hook.loss(losses, logits, yb)
    return losses.sum() / yb.shape[1]


def loss_gradient(group: Group, logits: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """The training loss's gradient with respect to the logits (R, B, classes): written out
    for plain cross-entropy (autograd's graph of it costs a third of a small group's step),
    through autograd for anything else."""
    if group.training.loss == "cross_entropy" and not any(changes_loss(h) for h in group.hooks):
        return cross_entropy_gradient(logits, yb)
    logits.requires_grad_()
    (grad,) = torch.autograd.grad(training_loss(group, logits, yb), logits)
    return grad


def changes_loss(hook: regularizers.Hooks) -> bool:
    return type(hook).loss is not regularizers.Hooks.loss


def cross_entropy_gradient(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d/d logits of the runs' summed mean cross-entropies (R, B, classes), by the kernels
    that autograd's backward of `sample_losses` runs (so the same numbers, bit for bit):
    nll's gradient is -1/B at each label, log-softmax's backward takes it from there."""
    log_p = torch.log_softmax(logits.transpose(1, 2), dim=1)  # (R, classes, B)
    # 1/B as autograd's division computes it, in the logits' dtype (a Python float of it is
    # exact, and scatter_ casts it back exactly).
    per_sample = float(torch.ones((), dtype=logits.dtype) / y.shape[-1])
    labels = y.expand(logits.shape[:2]).unsqueeze(1)
    grad = torch.zeros_like(log_p).scatter_(1, labels, -per_sample)
    return torch._log_softmax_backward_data(grad, log_p, 1, log_p.dtype).transpose(1, 2)


def train_epoch(
    group: Group,
    data: Tensors,
    batch_size: int,
    order=None,
    batches: range | None = None,
    on_step=lambda: None,
) -> None:
    """The batches `batches` (all) of an epoch in the runs' orders `order` (drawn anew);
    `on_step()` after each."""
    group.model.train()
    n = data.x_train.shape[0]
    if order is None:
        order = epoch_order(group, n, data.x_train.device)
    augments = group.training.augment.enabled
    if batches is None:
        batches = range(math.ceil(n / batch_size))
    for b in batches:
        idx = order[:, b * batch_size : (b + 1) * batch_size]
        xb = gather(data.x_train, idx)
        if augments:
            xb = augment.augment(xb, group.augment_gens, group.training.augment)
        masked_step(group, xb, gather(data.y_train, idx))
        on_step()


def masked_step(group: Group, xb: torch.Tensor, yb: torch.Tensor) -> None:
    """A train step that leaves frozen runs as they are: their parameters and batchnorm
    statistics are put back after it (stacked tensors hold the runs along dim 0). With every
    run frozen, nothing is computed at all."""
    frozen = group.frozen
    if frozen is None or not frozen.any():
        train_step(group, xb, yb)
        return
    if frozen.all():
        group.step += 1
        return
    state = list(group.model.parameters()) + list(group.model.buffers())
    rows = frozen.nonzero().flatten().to(xb.device)
    kept = [t.detach()[rows].clone() for t in state]
    train_step(group, xb, yb)
    with torch.no_grad():
        for t, k in zip(state, kept):
            t[rows] = k


@torch.no_grad()
def freeze_interpolating(group: Group, data: Tensors) -> None:
    """Freeze the runs whose train error on their labels is 0 now."""
    logits = predict(group.model, data.x_train, group.eval_rows)
    wrong = (logits.argmax(-1) != data.y_train).any(1)
    group.frozen |= ~wrong.cpu()
    group.model.train()


def gather(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """t[idx] for a 2-D index (R, B): each run's batch. index_select on the flat index is
    ~3x faster on the CPU than advanced indexing."""
    return t.index_select(0, idx.flatten()).view(*idx.shape, *t.shape[1:])


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, chunk: int = EVAL_CHUNK) -> torch.Tensor:
    """Logits of every run on a shared input set, in chunks: (R, N, classes)."""
    model.eval()
    return torch.cat([model(x[i : i + chunk]) for i in range(0, x.shape[0], chunk)], dim=1)


def _loss_and_error(logits: torch.Tensor, y: torch.Tensor, loss: str):
    """Per-run mean loss and error rate (R,) of logits (R, N, classes) against labels y."""
    return sample_losses(logits, y, loss).mean(1), _error(logits.argmax(-1), y)


def _error(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (pred != y).float().mean(1)


@torch.no_grad()
def evaluate(
    model: nn.Module, data: Tensors, loss: str, rows: int = EVAL_CHUNK
) -> dict[str, torch.Tensor]:
    """Per-run losses and errors (R,) on the train set (noisy and clean labels), the test set
    and the validation split (NaN without one); forward passes of `rows` samples."""
    train_logits = predict(model, data.x_train, rows)
    train_pred = train_logits.argmax(-1)
    train_loss = sample_losses(train_logits, data.y_train, loss).mean(1)
    test_logits = predict(model, data.x_test, rows)
    test_loss, test_error = _loss_and_error(test_logits, data.y_test, loss)
    nan = torch.full_like(train_loss, float("nan"))
    # Memorization: how many of the label-noised samples the model predicts as noised.
    noisy_fit = nan
    if data.noisy.any():
        noisy_fit = (train_pred[:, data.noisy] == data.y_train[data.noisy]).float().mean(1)
    val_loss, val_error = (
        _loss_and_error(predict(model, data.x_val, rows), data.y_val, loss)
        if len(data.y_val)
        else (nan, nan)
    )
    return {
        "train_loss": train_loss,
        "train_error": _error(train_pred, data.y_train),
        "train_error_clean": _error(train_pred, data.y_train_clean),
        "test_loss": test_loss,
        "test_error": test_error,
        "noisy_fit": noisy_fit,
        "val_loss": val_loss,
        "val_error": val_error,
    }


def _rows(group: Group, plan: Plan, metrics: dict, elapsed: float) -> list[dict]:
    values = {k: v.double().cpu().numpy() for k, v in metrics.items()}
    epoch, rows = plan.epoch(group.step), []
    for i, run in enumerate(group.runs):
        if group.diverged_epoch[i] is None and not math.isfinite(values["train_loss"][i]):
            group.diverged_epoch[i] = epoch
        row = {"run_id": run.run_id, **run.to_dict(), "epoch": epoch, "step": group.step}
        row.update({k: float(v[i]) for k, v in values.items()})
        row["diverged"] = group.diverged_epoch[i] is not None
        row["wall_time"] = elapsed
        rows.append(row)
    return rows


def set_threads(device: torch.device, threads: int) -> None:
    if device.type == "cpu":
        torch.set_num_threads(threads)


def train_group(
    spec: GroupSpec,
    arrays: Arrays,
    device: str = "auto",
    threads: int = 1,
    log=print,
    dtype=torch.float32,
    checkpoint_path=None,
    checkpoint_every: int = 0,
    weights_in=None,
    weights_out=None,
    progress_every: float = 0,
    progress_path=None,
) -> pd.DataFrame:
    """Train every run of a group spec; return one tidy row per run and evaluation point.

    The budget is `training.steps` gradient steps, or `epochs` passes over the data. With
    `checkpoint_path`, the state is saved every `checkpoint_every` epochs (under a steps
    budget: every as many steps as that many epochs of the whole prepared training set take,
    the same for every size of a sweep) and a rerun resumes from the last save, ending with
    the same numbers as an uninterrupted run. Under weight reuse, `weights_in` holds the
    final weights of the group that `spec.reuse_from` names, and the group's own final
    weights are written to `weights_out`. Every `progress_every` seconds a progress line is
    logged (and written to `progress_path`).
    """
    dev = resolve_device(device)
    set_threads(dev, threads)
    full = len(arrays.y_train)
    arrays = group_arrays(spec, arrays)
    runs = list(spec.runs)
    shape = input_shape(spec, arrays)
    data = Tensors.from_arrays(arrays, dev, dtype, shape)
    group = make_group(spec, runs, shape, arrays.num_classes, dev, dtype)
    if spec.reuse_from is not None:
        gens = [generator(r.seed, "reuse") for r in runs]
        reuse.grow(group.model, runs, reuse.load(weights_in), gens)
    tr = spec.training
    plan = Plan.of(tr, len(arrays.y_train), full, checkpoint_every if checkpoint_path else 0)
    progress = checkpoint.resume(checkpoint_path, spec, group) if checkpoint_path else None
    if progress:
        log(f"resuming from the checkpoint at {plan.where(group.step)}")
    if group.bf16:
        log("training forward passes in bfloat16 autocast (training.precision)")
    progress = progress or checkpoint.Progress()
    start = time.perf_counter() - progress.elapsed
    per_epoch = plan.per_epoch
    watch = Watch(
        plan.budget / per_epoch,
        per_epoch,
        progress_every,
        log,
        progress_path,
        group.step / per_epoch,
        progress.elapsed,
    )
    watch.report()
    while group.step < plan.budget:
        position = group.step % plan.per_epoch
        if position == 0:
            progress.order = epoch_order(group, data.x_train.shape[0], dev)
        stop = plan.next_stop(group.step)
        batches = range(position, position + stop - group.step)
        train_epoch(group, data, tr.batch_size, progress.order, batches, watch.step)
        progress.elapsed = time.perf_counter() - start
        if group.step % plan.per_epoch == 0:
            progress.order = None  # the epoch is done: the next draws its own order
            if tr.stop_at_zero_train_error:
                freeze_interpolating(group, data)
        if group.step in plan.evals:
            metrics = evaluate(group.model, data, tr.loss, group.eval_rows)
            new = _rows(group, plan, metrics, progress.elapsed)
            progress.rows.extend(new)
            log(progress_line(new, plan, group.step, progress.elapsed))
        if plan.saves_at(group.step):
            # The progress file as of the checkpoint, which is what a stopped job resumes
            # from and what `doubledescent status` reads beside it.
            watch.report(log=False)
            checkpoint.save(checkpoint_path, spec, group, progress)
    if weights_out:
        reuse.save(weights_out, group.model, runs)
    precision = "bf16" if group.bf16 else "fp32"
    return group_table(spec, arrays, group.runs, progress.rows, dev, precision)


def group_arrays(spec: GroupSpec, arrays: Arrays) -> Arrays:
    """The samples a group trains on: in a sample-wise sweep, its subset of the prepared data."""
    if spec.n_train is not None:
        return nested_subset(arrays, spec.n_train, spec.dataset.seed)
    return arrays


@dataclass(frozen=True)
class Plan:
    """When a group's training stops, evaluates and saves, in gradient steps."""

    per_epoch: int  # steps of one pass over the group's training set
    budget: int
    evals: frozenset[int]
    save_every: int  # 0: no checkpoints

    @classmethod
    def of(cls, training: TrainingSettings, n: int, n_prepared: int, checkpoint_every: int) -> Plan:
        """The plan of runs on `n` samples, of a prepared training set of `n_prepared`."""
        per_epoch = training.steps_per_epoch(n)
        # A steps budget saves as often for every size of a sweep (as an epoch of the whole
        # set would), not every few steps of a small one.
        unit = training.steps_per_epoch(n if training.steps is None else n_prepared)
        return cls(
            per_epoch=per_epoch,
            budget=training.budget_steps(n),
            evals=frozenset(training.eval_step_list(n)),
            save_every=checkpoint_every * unit,
        )

    def saves_at(self, step: int) -> bool:
        """Whether a checkpoint is due after `step` (none once the budget is spent)."""
        return bool(self.save_every) and step % self.save_every == 0 and step < self.budget

    def next_stop(self, step: int) -> int:
        """The next step at which something happens: an epoch ends, an evaluation or a save
        is due, or the budget is spent."""
        ahead = [s for s in self.evals if s > step]
        epoch_end = (step // self.per_epoch + 1) * self.per_epoch
        save = (step // self.save_every + 1) * self.save_every if self.save_every else epoch_end
        return min([epoch_end, save, self.budget, *ahead])

    def epoch(self, step: int) -> int | float:
        """Passes over the data after `step` steps: whole under an epochs budget (evaluations
        fall at epoch ends), fractional under a steps budget."""
        whole, rest = divmod(step, self.per_epoch)
        return whole if rest == 0 else step / self.per_epoch

    def where(self, step: int) -> str:
        return f"step {step} (epoch {self.epoch(step):.4g})"


def group_table(
    spec: GroupSpec, arrays: Arrays, runs: list[Run], rows: list[dict], dev, precision: str
) -> pd.DataFrame:
    """The job's rows with the columns of each run's group (in a pack, several groups)."""
    df = pd.DataFrame(rows)
    groups = pd.Series([group_id(r) for r in runs], [r.run_id for r in runs])
    shapes = {gid: (r.width, r.batchnorm) for gid, r in zip(groups, runs)}
    model, ds = spec.model.to_dict(), spec.dataset
    n_params = {
        gid: models.n_params(model, input_shape(spec, arrays), arrays.num_classes, *wb)
        for gid, wb in shapes.items()
    }
    gid = df.run_id.map(groups)
    table = df.assign(
        test_error_noisy=noisy_label_error(
            df["test_error"], ds.label_noise, arrays.num_classes, ds.noise_mode
        ),
        experiment=spec.experiment,
        dataset=ds.name,
        model=spec.model.name,
        n_params=gid.map(n_params),
        # The configured training-set size (in a sweep, this group's; the runs' own n_train
        # is None without one), and the samples fitted: that less the validation split.
        n_train=spec.n_train or ds.n_train,
        n_fit=len(arrays.y_train),
        num_classes=arrays.num_classes,
        label_noise=ds.label_noise,
        group=gid,
        group_size=gid.map(groups.value_counts()),
        device=str(dev),
        precision=precision,
        torch_version=torch.__version__,
        python_version=platform.python_version(),
    )
    # A pack's rows name it: its groups shared one job (and its wall time).
    return table if spec.group in shapes else table.assign(pack=spec.group)


def progress_line(rows: list[dict], plan: Plan, step: int, elapsed: float) -> str:
    df = pd.DataFrame(rows)
    eta = elapsed / step * (plan.budget - step)
    return (
        f"step {step}/{plan.budget}  epoch {plan.epoch(step):.4g}/{plan.epoch(plan.budget):.4g}  "
        f"train_loss {df.train_loss.mean():.4f}  "
        f"train_err {df.train_error.mean():.4f}  test_err {df.test_error.mean():.4f}  "
        f"diverged {int(df.diverged.sum())}/{len(df)}  "
        f"elapsed {elapsed:.0f}s  eta {eta:.0f}s"
    )
