"""distill: knowledge distillation from a CNN teacher to a small MLP student on the digits.

Topic 36 (knowledge distillation, Hinton, Vinyals & Dean, 2015). A teacher CNN (two conv +
batch-norm stages, 118k parameters) is trained on the digits; then a student 49x smaller (an
MLP 64 -> 32 -> 10, 2.4k) is trained twice from the same initial weights: once on the labels alone,
and once on the distillation loss

    L = alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T)) + (1 - alpha) * CE(z_s, y)

where T (the temperature) softens both distributions so the student also learns how the
teacher ranks the wrong classes ("dark knowledge": a 7 looks more like a 1 than like a 0),
and T^2 keeps the soft term's gradients on the scale of the hard one's. A temperature sweep
(T = 1, 2, 4, 8, alpha = 0.7) trains one student per T, each over three seeds, and reports
the mean test accuracy. The last line is ``final student_kd_acc <value>``: the mean at T = 4,
fixed in advance rather than picked on the test set.

Run: ``ember train distill`` or ``python ember/recipes/distill.py`` (``--smoke`` for a few
batches). The only framework line is ``import ember as torch``: swap it for ``import torch`` and
the file runs on PyTorch. Data: ``ember.datasets.load_digits``, its fixed 1,438/359 split.
Writes ``teacher.pt`` and ``last.pt`` (the T = 4 student as ``model``, and the teacher; PyTorch's
format), ``curves.png`` and ``temperature.png`` (accuracy against T, and one image's soft
targets at each T) to ``--out``.
"""
import math
import os
import sys
import time

import ember as torch
from ember.datasets import load_digits  # NumPy arrays, the same under PyTorch
from ember.recipes._common import pyplot, recipe_args, save_figure  # plain Python, no ember

nn = torch.nn
F = torch.nn.functional

NAME = "distill"
DEFAULTS = dict(epochs=20, lr=3e-3, batch_size=64)
SMOKE_BATCHES = 3
TEMPERATURES = (1.0, 2.0, 4.0, 8.0)
ALPHA = 0.7
SEEDS = 3


def parse_args(argv=None, prog=None):
    """The recipe's flags, validated before any work starts (argparse exits 2 on error)."""
    return recipe_args(argv, prog, __doc__, NAME, DEFAULTS)


def teacher_net():
    """The teacher: two conv + batch-norm + ReLU stages and a two-layer head."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 4 * 4, 96), nn.ReLU(), nn.Dropout(0.3), nn.Linear(96, 10))


def student_net():
    """The student: an MLP 64 -> 32 -> 10 on the flattened image."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def distillation_loss(student_logits, teacher_logits, target, temperature, alpha):
    """alpha T^2 KL(p_t^T || p_s^T) + (1 - alpha) CE(z_s, y); alpha = 0 is plain training."""
    hard = F.cross_entropy(student_logits, target)
    if alpha == 0:
        return hard
    soft = F.kl_div(F.log_softmax(student_logits / temperature, dim=1),
                    F.log_softmax(teacher_logits / temperature, dim=1),
                    reduction="batchmean", log_target=True)
    return alpha * temperature ** 2 * soft + (1 - alpha) * hard


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def fit(model, x, y, args, teacher_logits=None, temperature=1.0, alpha=0.0, log=None):
    """Adam + cosine schedule over ``args.epochs``; ``log(epoch, loss)`` after each epoch."""
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    epochs = 1 if args.smoke else args.epochs
    steps = math.ceil(len(x) / args.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(x))
        total, n = 0.0, 0
        for i, lo in enumerate(range(0, len(x), args.batch_size)):
            if args.smoke and i == SMOKE_BATCHES:
                break
            idx = order[lo:lo + args.batch_size]
            t_logits = None if teacher_logits is None else teacher_logits[idx]
            loss = distillation_loss(model(x[idx]), t_logits, y[idx], temperature, alpha)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
            n += 1
        if log is not None:
            log(epoch, total / n)
    return model


def save_curves(path, history):
    """The teacher's loss and test accuracy per epoch, and a student's with and without KD."""
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, label in (("teacher", "teacher"), ("student", "student, labels only"),
                       ("student_kd", "student, distilled (T=4)")):
        ep = range(1, len(history[key + "_loss"]) + 1)
        a.plot(ep, history[key + "_loss"], label=label)
        b.plot(ep, history[key + "_acc"], label=label)
    a.set(xlabel="epoch", ylabel="training loss", title="loss (KD loss for the distilled)",
          yscale="log")
    a.legend()
    b.set(xlabel="epoch", ylabel="test accuracy", title="test accuracy")
    b.legend()
    save_figure(fig, path)


def save_temperature(path, sweep, baseline, teacher_acc, soft_targets, label):
    """Student accuracy against T (mean and spread over seeds); soft targets at each T."""
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    ts = list(sweep)
    means = [sum(v) / len(v) for v in sweep.values()]
    a.errorbar(ts, means, yerr=[(max(v) - min(v)) / 2 for v in sweep.values()], marker="o",
               capsize=3, label=f"distilled (alpha={ALPHA})")
    a.axhline(sum(baseline) / len(baseline), ls="--", c="gray", label="labels only")
    a.axhline(teacher_acc, ls=":", c="k", label="teacher")
    a.set(xscale="log", xticks=ts, xticklabels=[f"{t:g}" for t in ts], xlabel="temperature T",
          ylabel="test accuracy", title="student accuracy vs temperature")
    a.minorticks_off()  # no "3x10^0" labels between the temperatures
    a.legend()
    width = 0.8 / len(soft_targets)
    for j, (t, p) in enumerate(soft_targets.items()):
        b.bar([c + (j - len(soft_targets) / 2 + 0.5) * width for c in range(10)], p, width,
              label=f"T={t:g}")
    b.set(xticks=range(10), xlabel="class", ylabel="softmax(z / T)", yscale="log",
          title=f"teacher's soft targets for one image of a {label}")
    b.legend()
    save_figure(fig, path)


def main(argv=None, prog=None):
    args = parse_args(argv, prog)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    plots = pyplot() is not None
    x_train, y_train = load_digits("train")
    x_test, y_test = load_digits("test")
    x_train = torch.tensor(x_train[:, None] / 16.0, dtype=torch.float32)
    x_test = torch.tensor(x_test[:, None] / 16.0, dtype=torch.float32)
    y_train, y_test = torch.tensor(y_train), torch.tensor(y_test)
    history = {}
    start = time.time()

    def logger(key, model):
        history[key + "_loss"], history[key + "_acc"] = [], []

        def log(epoch, loss):
            acc = accuracy(model, x_test, y_test)
            history[key + "_loss"].append(loss)
            history[key + "_acc"].append(acc)
            print(f"{key:>10} epoch {epoch:3d}  loss {loss:.4f}  test acc {acc:7.2%}",
                  flush=True)
        return log

    teacher = teacher_net()
    n_t = sum(p.numel() for p in teacher.parameters())
    n_s = sum(p.numel() for p in student_net().parameters())
    print(f"{NAME}: teacher {n_t:,} parameters, student {n_s:,}; {len(x_train)} train / "
          f"{len(x_test)} test images")
    fit(teacher, x_train, y_train, args, log=logger("teacher", teacher))
    teacher_acc = accuracy(teacher, x_test, y_test)
    torch.save(teacher.state_dict(), os.path.join(args.out, "teacher.pt"))
    with torch.no_grad():  # the teacher's logits are fixed: compute them once
        teacher.eval()
        teacher_logits = teacher(x_train)

    seeds = 1 if args.smoke else SEEDS
    temperatures = TEMPERATURES[2:3] if args.smoke else TEMPERATURES
    baseline, sweep = [], {t: [] for t in temperatures}
    for s in range(seeds):
        torch.manual_seed(args.seed + 1 + s)
        init = student_net().state_dict()  # every student of a seed starts from these weights
        student = student_net()
        student.load_state_dict(init)
        fit(student, x_train, y_train, args, log=logger("student", student) if s == 0 else None)
        baseline.append(accuracy(student, x_test, y_test))
        for t in temperatures:
            student = student_net()
            student.load_state_dict(init)
            log = logger("student_kd", student) if s == 0 and t == 4.0 else None
            fit(student, x_train, y_train, args, teacher_logits, t, ALPHA, log=log)
            sweep[t].append(accuracy(student, x_test, y_test))
            if s == 0 and t == 4.0:
                torch.save({"model": student.state_dict(), "teacher": teacher.state_dict(),
                            "temperature": t, "alpha": ALPHA, "args": vars(args)},
                           os.path.join(args.out, "last.pt"))
        print(f"seed {s}: labels only {baseline[-1]:.2%}; distilled "
              + ", ".join(f"T={t:g} {sweep[t][-1]:.2%}" for t in temperatures), flush=True)

    def mean(v):
        return sum(v) / len(v)
    print(f"teacher {teacher_acc:.2%} ({n_t:,} parameters)")
    print(f"student, labels only {mean(baseline):.2%} (mean of {seeds} seeds, {n_s:,} params)")
    for t in temperatures:
        print(f"student, distilled T={t:g} alpha={ALPHA}: {mean(sweep[t]):.2%}")
    if plots:
        # one test image's soft targets: the most uncertain one shows the dark knowledge best
        with torch.no_grad():
            z = teacher(x_test)
        i = int(z.softmax(1).max(1).values.argmin())
        soft = {t: F.softmax(z[i] / t, dim=0).numpy() for t in TEMPERATURES}
        save_curves(os.path.join(args.out, "curves.png"), history)
        save_temperature(os.path.join(args.out, "temperature.png"), sweep, baseline,
                         teacher_acc, soft, int(y_test[i]))
    print(f"saved {args.out}/teacher.pt, last.pt, curves.png, temperature.png; "
          f"{time.time() - start:.1f}s")
    print(f"final student_kd_acc {mean(sweep[4.0]):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
