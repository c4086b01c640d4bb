"""finetune: transfer learning, pre-train on digits 0-4 and fine-tune on a few 5-9s.

Topic 13 (transfer learning and fine-tuning). A CNN (the backbone: two conv + batch-norm +
pool stages; the head: a 64-unit layer and a linear layer) is pre-trained on the digits 0-4.
The task is then the digits 5-9 with only ``SHOTS`` = 5 labelled images per class, the regime
where transfer can pay. Three ways to learn it, for the same epochs:

- frozen backbone: a new head is trained on the pre-trained conv features, which stay as
  they are (batch-norm statistics too: the backbone is kept in eval mode);
- fine-tuned, discriminative learning rates: the pre-trained backbone and a new head all
  train, but the earlier a layer the smaller its rate (head lr, second conv stage lr / 3,
  first lr / 10), since early features (strokes, edges) transfer and late ones are
  task-specific (ULMFiT's idea);
- from scratch: the same network, randomly initialised, every layer at lr.

Accuracy is measured on every image of 5-9 outside the few (both splits), averaged over
three draws of the few. The last line is ``final finetune_acc <value>``: the discriminative
fine-tune's mean test accuracy.

Run: ``ember train finetune`` or ``python ember/recipes/finetune.py`` (``--smoke`` for a few
batches). The only framework line is ``import ember as torch``: swap it for ``import torch`` and
the file runs on PyTorch. Data: ``ember.datasets.load_digits``, its fixed 1,438/359 split.
Writes ``pretrained.pt`` (after stage one) and ``last.pt`` (the fine-tuned model as ``model``
and the pre-trained weights; PyTorch's format), ``curves.png`` and ``compare.png`` to ``--out``.
"""
import os
import sys
import time

import numpy as np

import ember as torch
from ember.datasets import load_digits  # NumPy arrays, the same under PyTorch
from ember.recipes._common import pyplot, recipe_args, save_figure  # plain Python, no ember

nn = torch.nn
F = torch.nn.functional

NAME = "finetune"
DEFAULTS = dict(epochs=15, lr=3e-3, batch_size=32)
SMOKE_BATCHES = 3
SHOTS = 5  # labelled images per class of 5-9 for the fine-tuning task
FINETUNE_EPOCHS = 4  # x --epochs: the few-shot set is a few batches an epoch
DRAWS = 3  # few-shot sets drawn (each with its own initialisations); scores averaged


def parse_args(argv=None, prog=None):
    """The recipe's flags, validated before any work starts (argparse exits 2 on error)."""
    return recipe_args(argv, prog, __doc__, NAME, DEFAULTS)


class Net(nn.Module):
    """backbone: two conv stages (8x8 -> 4x4 -> 2x2); head: 256 -> 64 -> classes."""

    def __init__(self, classes=5):
        super().__init__()
        self.stage1 = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2))
        self.stage2 = nn.Sequential(
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2))
        self.head = new_head(classes)

    def forward(self, x):
        return self.head(self.stage2(self.stage1(x)))


def new_head(classes=5):
    return nn.Sequential(nn.Flatten(), nn.Linear(64 * 2 * 2, 64), nn.ReLU(),
                         nn.Linear(64, classes))


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def train(model, opt, x, y, x_test, y_test, epochs, args, frozen=False, tag=""):
    """Plain cross-entropy training; test accuracy after every epoch (a list)."""
    accs, losses = [], []
    for epoch in range(1, epochs + 1):
        model.train()
        if frozen:  # a frozen backbone keeps its batch-norm running statistics as well
            model.stage1.eval()
            model.stage2.eval()
        order = torch.randperm(len(x))
        total, n = 0.0, 0
        for i, lo in enumerate(range(0, len(x), args.batch_size)):
            if args.smoke and i == SMOKE_BATCHES:
                break
            idx = order[lo:lo + args.batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
            n += 1
        accs.append(accuracy(model, x_test, y_test))
        losses.append(total / max(n, 1))
        if epoch == epochs or epoch % max(1, epochs // 5) == 0:
            print(f"{tag:>14} epoch {epoch:3d}/{epochs}  loss {losses[-1]:.4f}  test acc "
                  f"{accs[-1]:7.2%}", flush=True)
    return losses, accs


def save_curves(path, pre, runs):
    """Pre-training on 0-4, then test accuracy on 5-9 per epoch for each way of learning it."""
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    ep = range(1, len(pre[0]) + 1)
    a.plot(ep, pre[0], label="train loss")
    a.plot(ep, pre[1], label="test accuracy")
    a.set(xlabel="epoch", title="pre-training on digits 0-4")
    a.legend()
    for name, (_, accs) in runs.items():
        b.plot(range(1, len(accs) + 1), accs, label=name)
    b.set(xlabel="epoch", ylabel="test accuracy (5-9)",
          title=f"learning 5-9 from {SHOTS} images per class (first draw)")
    b.legend()
    save_figure(fig, path)


def save_compare(path, final):
    """Final test accuracy on 5-9 of each way."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = list(final)
    ax.barh(names, [final[k] for k in names], color=["C0", "C1", "C2"])
    for i, k in enumerate(names):
        ax.text(final[k], i, f" {final[k]:.1%}", va="center")
    ax.set(xlim=(0, 1.12), xlabel="test accuracy on 5-9",
           title="transfer vs scratch (mean over the draws)")
    save_figure(fig, path)


def three_ways(pretrained, xb, yb, xb_t, yb_t, epochs, args):
    """Learn 5-9 from (xb, yb) by each way; {way: (losses, test accuracies)} and the tuned net."""
    def from_pretrained():
        net = Net()
        net.load_state_dict(pretrained)
        net.head = new_head()  # a new head: 5-9 are new classes
        return net

    runs = {}
    frozen = from_pretrained()
    for p in list(frozen.stage1.parameters()) + list(frozen.stage2.parameters()):
        p.requires_grad_(False)
    opt = torch.optim.Adam(frozen.head.parameters(), lr=args.lr)
    runs["frozen backbone, new head"] = train(frozen, opt, xb, yb, xb_t, yb_t, epochs, args,
                                              frozen=True, tag="frozen")
    tuned = from_pretrained()
    opt = torch.optim.Adam([  # discriminative learning rates: smaller for earlier layers
        {"params": tuned.stage1.parameters(), "lr": args.lr / 10},
        {"params": tuned.stage2.parameters(), "lr": args.lr / 3},
        {"params": tuned.head.parameters(), "lr": args.lr}])
    runs["fine-tuned, discriminative lr"] = train(tuned, opt, xb, yb, xb_t, yb_t, epochs, args,
                                                  tag="fine-tune")
    scratch = Net()
    opt = torch.optim.Adam(scratch.parameters(), lr=args.lr)
    runs["from scratch"] = train(scratch, opt, xb, yb, xb_t, yb_t, epochs, args, tag="scratch")
    return runs, tuned


def main(argv=None, prog=None):
    args = parse_args(argv, prog)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    plots = pyplot() is not None
    x_train, y_train = load_digits("train")
    x_test, y_test = load_digits("test")
    low, low_t = y_train < 5, y_test < 5

    def as_tensors(x, y):
        return (torch.tensor(x[:, None] / 16.0, dtype=torch.float32),
                torch.tensor(y % 5))
    xa, ya = as_tensors(x_train[low], y_train[low])
    xa_t, ya_t = as_tensors(x_test[low_t], y_test[low_t])
    pre_epochs = 1 if args.smoke else args.epochs
    ft_epochs = 1 if args.smoke else FINETUNE_EPOCHS * args.epochs
    draws = 1 if args.smoke else DRAWS
    start = time.time()

    model = Net()
    print(f"{NAME}: {sum(p.numel() for p in model.parameters()):,} parameters; pre-train on "
          f"{len(xa)} images of 0-4 for {pre_epochs} epochs, then {5 * SHOTS} images of 5-9 "
          f"({SHOTS} a class, {draws} draws) for {ft_epochs} epochs")
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    pre = train(model, opt, xa, ya, xa_t, ya_t, pre_epochs, args, tag="pre-train 0-4")
    torch.save(model.state_dict(), os.path.join(args.out, "pretrained.pt"))
    pretrained = model.state_dict()

    # which few images are labelled moves the scores by points: average over several draws
    finals = {}
    for d in range(draws):
        rng = np.random.default_rng(args.seed + d)
        few = np.concatenate([rng.choice(np.flatnonzero(y_train == c), SHOTS, replace=False)
                              for c in range(5, 10)])
        xb, yb = as_tensors(x_train[few], y_train[few])
        # scored on every 5-9 image not among the few (~880: one image is 0.1%, not 0.6%)
        rest = np.setdiff1d(np.flatnonzero(~low), few)
        xb_t, yb_t = as_tensors(np.concatenate([x_test[~low_t], x_train[rest]]),
                                np.concatenate([y_test[~low_t], y_train[rest]]))
        torch.manual_seed(args.seed + 1 + d)
        runs_d, tuned = three_ways(pretrained, xb, yb, xb_t, yb_t, ft_epochs, args)
        if d == 0:
            runs = runs_d
            torch.save({"model": tuned.state_dict(), "pretrained": pretrained,
                        "args": vars(args)}, os.path.join(args.out, "last.pt"))
        for name, (_, accs) in runs_d.items():
            finals.setdefault(name, []).append(accs[-1])
        print(f"draw {d}: " + ", ".join(f"{k} {v[-1]:.2%}" for k, v in finals.items()),
              flush=True)

    final = {name: sum(v) / len(v) for name, v in finals.items()}
    print(f"pre-training: test accuracy on 0-4 {pre[1][-1]:.2%}")
    for name, acc in final.items():
        print(f"5-9 from {SHOTS} images a class, {name}: test accuracy {acc:.2%} "
              f"(mean of {draws}; {min(finals[name]):.2%} to {max(finals[name]):.2%})")
    if plots:
        save_curves(os.path.join(args.out, "curves.png"), pre, runs)
        save_compare(os.path.join(args.out, "compare.png"), final)
    print(f"saved {args.out}/pretrained.pt, last.pt, curves.png, compare.png; "
          f"{time.time() - start:.1f}s")
    print(f"final finetune_acc {final['fine-tuned, discriminative lr']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
