"""Report captions (reStructuredText) written from an experiment's actual settings.

The rules pass `caption(...)` as a param; workflow/report/caption.rst only prints it.
"""

from __future__ import annotations

from doubledescent import architectures, config

LOSSES = {"cross_entropy": "cross-entropy", "mse": "squared loss (one-hot targets)"}
NOISE_MODES = {"random_class": "a uniformly random class", "wrong_class": "always a wrong class"}
L2_MODES = {
    "coupled": "added to the gradient",
    "penalty": "as a penalty on the loss",
    "decoupled": "decoupled from the optimizer (AdamW)",
}


# `plot.test_error`: what the model-, epoch- and sample-wise figures call test error.
TEST_ERRORS = {
    "clean": "Test error is measured on the clean test labels.",
    "noisy": "Test error is the expected error on test labels drawn from the training noise "
    "model (as in Nakkiran et al. 2019's Fig. 1), computed exactly from the clean error.",
}


def size_name(exp: dict) -> str:
    symbol = architectures.family(exp["model"]["name"]).symbol
    return "parameter count" if exp["plot"]["x"] == "n_params" else f"width {symbol}"


def band(exp: dict) -> str:
    if exp["plot"]["errorbar"] == "sd":
        return "one standard deviation"
    return "a 95% bootstrap confidence interval"


def _figures(exp: dict) -> dict[str, str]:
    """What each figure shows, in the experiment's terms."""
    size, bands, loss = size_name(exp), band(exp), LOSSES[exp["training"]["loss"]]
    over_seeds = f"mean over seeds with a band of {bands}"
    return {
        "model_wise": f"Model-wise double descent: final test error and train error on the "
        f"noisy training labels against the {size}, one line per regularizer, {over_seeds}. "
        "Dashed lines mark each regularizer's interpolation threshold; on a parameter axis, "
        "dotted gray lines mark params = n and params = n x K.",
        "model_wise_loss": f"Model-wise curves of the loss: final test and train {loss} "
        f"(noisy training labels) against the {size}, one line per regularizer, {over_seeds}; "
        "threshold and sample-size lines as in the error figure.",
        "memorization": "Memorization: the fraction of the label-noised training samples whose "
        f"prediction equals their noisy label, at the final epoch, against the {size}; one line "
        f"per regularizer, {over_seeds}. A fraction of one means every noisy label is fitted.",
        "epoch_wise": "Epoch-wise double descent (after Nakkiran et al. 2019, Fig. 2): test "
        f"error, mean over seeds, for each {size} (rows, largest on top) and each evaluated "
        "epoch (columns, log-spaced), one panel per regularizer, on a common color scale.",
        "epoch_curves": "Test error against epoch for the smallest width, the detected "
        f"interpolation threshold and the largest width of each regularizer, {over_seeds}.",
        "sample_wise": "Sample-wise double descent (after Nakkiran et al. 2019, Fig. 11): final "
        "test error against the number of training samples fitted (each size a nested subset "
        "of the largest, validation split excluded), one line per width (at most six), one "
        f"panel per regularizer, {over_seeds}.",
        "optimal_regularization": "Optimal regularization (after Nakkiran et al. 2020): final "
        f"test error against the {size} for each weight decay of the grid (thin), for the one "
        "chosen per size on the validation split (solid) and for the one chosen on the test "
        f"set, the oracle (dashed), {over_seeds}.",
    }


def _tables(exp: dict) -> dict[str, str]:
    tol = exp["plot"]["interpolation_tol"]
    return {
        "summarize": "Per regularizer: the width and parameter count of the test-error peak "
        "with its height (mean and standard deviation over seeds), the interpolation threshold "
        "(the smallest width whose mean final train error on the noisy labels is at most "
        f"{tol}; a dash where no width reaches it), the test error of the largest model and the "
        "lowest of the sweep, at the final epoch, in percent. ``summary.tex`` beside it is the "
        "same table in booktabs LaTeX.",
        "optimal_regularization_table": "Optimal regularization (after Nakkiran et al. 2020): "
        "per weight-decay grid and width, the lambda with the lowest mean final validation "
        "error and its test error, beside the oracle lambda (lowest mean test error) and its "
        "test error, in percent, diverged runs left out; ties go to the smaller lambda, a dash "
        "where there is no validation split. ``optimal_regularization.tex`` beside it is the "
        "same table in booktabs LaTeX.",
    }


def _numbers(values) -> str:
    return ", ".join(f"{v:g}" for v in values)


def _dataset(exp: dict) -> str:
    ds = exp["dataset"]
    sizes = _numbers(config.train_sizes(exp))
    text = f"Dataset ``{ds['name']}``, {sizes} training and {ds['n_test']} test samples"
    if ds["validation"]:
        text += f" ({ds['validation']} of the training samples held out for validation)"
    noise = ds["label_noise"] if isinstance(ds["label_noise"], list) else [ds["label_noise"]]
    if any(noise):  # a list is a label-noise sweep: one dataset per rate
        rates = ", ".join(f"{100 * q:g}%" for q in noise)
        text += f"; {rates} of the training labels replaced by {NOISE_MODES[ds['noise_mode']]}"
    return text + f" (data seed {ds['seed']})."


def _training(exp: dict) -> str:
    tr = exp["training"]
    if tr["optimizer"] == "adam":
        b1, b2 = tr["adam_betas"]
        optimizer = f"Adam (betas {b1:g}, {b2:g}, eps {tr['adam_eps']:g})"
    elif tr["momentum"]:
        optimizer = f"SGD with momentum {tr['momentum']:g}"
    else:
        optimizer = "SGD without momentum"
    lr = f"learning rate {tr['lr']:g}"
    if tr["schedule"] == "inverse_sqrt":
        lr += f" divided by sqrt(1 + floor(step / {tr['schedule_steps']}))"
    elif tr["schedule"] == "step":
        gamma = tr.get("schedule_gamma", 0.9)
        lr += f" times {gamma:g} every {tr['schedule_steps']} steps"
    budget = f"{tr['steps']} gradient steps" if tr.get("steps") else f"{tr['epochs']} epochs"
    text = (
        f"Training: {optimizer}, {lr}, {LOSSES[tr['loss']]}, batch size {tr['batch_size']}, "
        f"{budget}"
    )
    aug = tr["augment"]
    if aug["crop_padding"] or aug["hflip"]:
        parts = [f"random crops (padding {aug['crop_padding']})"] * bool(aug["crop_padding"])
        parts += ["horizontal flips"] * aug["hflip"]
        text += ", augmented with " + " and ".join(parts)
    return text + f"; seeds {_numbers(exp['seeds'])}."


def _regularizer(name: str, reg: dict, tr: dict) -> str:
    parts = []
    if reg["weight_decay"]:
        target = "all parameters" if tr["decay"] == "all" else "the weights"
        parts.append(f"weight decay {reg['weight_decay']:g} on {target}, {L2_MODES[tr['l2_mode']]}")
    if reg["dropout"]:
        parts.append(f"dropout {reg['dropout']:g}")
    if reg["batchnorm"]:
        parts.append("batch normalization")
    return f"- ``{name}``: " + ("; ".join(parts) or "no regularization")


def settings(exp: dict) -> str:
    """The experiment's settings as a paragraph and a list of its regularizer variants."""
    model = exp["model"]
    family = architectures.family(model["name"])
    symbol, shape = family.symbol, family.description
    widths = _numbers(sorted(exp["widths"]))
    arch = "; batch normalization in every block" if model.get("batchnorm") else ""
    lines = [
        f"**Settings.** {_dataset(exp)} Model: {shape.format(**model)}, {symbol} in {widths}"
        f"{arch}. {_training(exp)} {TEST_ERRORS[exp['plot']['test_error']]} Regularizers:",
        "",
    ]
    tr = exp["training"]
    # Sorted: the caption is a param, and reordering the YAML must not redraw the figures.
    lines += [_regularizer(n, r, tr) for n, r in sorted(config.variants(exp).items())]
    return "\n".join(lines)


def caption(experiment: str, exp: dict, rule: str, figure: str | None = None) -> str:
    """The caption of a figure (`figure`) or of a table (by its `rule`)."""
    what = _figures(exp)[figure] if figure else _tables(exp)[rule]
    return f"Experiment **{experiment}**. {what}\n\n{settings(exp)}\n"
