"""mlp-scratch: a feed-forward net built from nn.Parameters, trained by a hand-written loop.

Topic 38 ("build a neural network from scratch"): no ``nn.Linear``, no ``nn.Sequential``, no
``torch.optim``. The two-hidden-layer net on the bundled 8x8 digits (64 -> 128 -> 64 -> 10)
holds its weights as ``nn.Parameter``s initialised by He's rule (std = sqrt(2 / fan_in)),
computes the cross-entropy itself (log-softmax as ``z - logsumexp(z)``), and updates with
SGD + momentum written out (v = mu * v + g; w -= lr * v) under ``torch.no_grad()``.
Autograd is the only machinery it borrows.

Run: ``ember train mlp-scratch`` or ``python ember/recipes/mlp_scratch.py`` (``--smoke`` for a
few batches). The only framework line is ``import ember as torch``: swap it for ``import torch``
and the file runs on PyTorch. Data: ``ember.datasets.load_digits`` (NumPy arrays; UCI optical
digits, CC BY 4.0), its fixed 1,438/359 train/test split. Writes ``last.pt`` (state dicts, in
PyTorch's format), ``curves.png`` and ``weights.png`` (the first layer's 128 filters) to
``--out``; the last line printed is ``final test_acc <accuracy>``.
"""
import os
import sys
import time

import numpy as np

import ember as torch
from ember.datasets import load_digits  # NumPy arrays, the same under PyTorch
from ember.recipes._common import pyplot, recipe_args, save_figure  # plain Python, no ember

nn = torch.nn

NAME = "mlp-scratch"
DEFAULTS = dict(epochs=30, lr=0.05, batch_size=32)
SMOKE_BATCHES = 5


def parse_args(argv=None, prog=None):
    """The recipe's flags, validated before any work starts (argparse exits 2 on error)."""
    return recipe_args(argv, prog, __doc__, NAME, DEFAULTS)


class MLP(nn.Module):
    """y = W3 relu(W2 relu(W1 x + b1) + b2) + b3, every weight an explicit nn.Parameter."""

    def __init__(self, sizes=(64, 128, 64, 10)):
        super().__init__()
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            # He initialisation keeps the activations' variance constant through ReLU layers
            self.weights.append(nn.Parameter(torch.randn(fan_in, fan_out) * (2 / fan_in) ** 0.5))
            self.biases.append(nn.Parameter(torch.zeros(fan_out)))

    def forward(self, x):
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = x @ w + b
            if i < len(self.weights) - 1:
                x = x.clamp(min=0)  # ReLU
        return x


def cross_entropy(logits, target):
    """Mean of -log softmax(z)[y], with log softmax(z) = z - logsumexp(z) for stability."""
    logp = logits - logits.logsumexp(dim=1, keepdim=True)
    return -logp[torch.arange(len(target)), target].mean()


def save_curves(path, history):
    """Loss and accuracy per epoch, side by side (matplotlib, if installed)."""
    plt = pyplot()
    if plt is None:
        return False
    ep = range(1, len(history["loss"]) + 1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(ep, history["loss"], label="train")
    a.plot(ep, history["test_loss"], label="test")
    a.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    a.legend()
    b.plot(ep, history["train_acc"], label="train")
    b.plot(ep, history["test_acc"], label="test")
    b.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    b.legend()
    save_figure(fig, path)
    return True


def save_weights(path, w1):
    """The first layer's filters as 8x8 images: what each hidden unit looks for."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(8, 16, figsize=(12, 6))
    for i, ax in enumerate(axes.flat):
        ax.imshow(w1[:, i].reshape(8, 8), cmap="RdBu")
        ax.axis("off")
    fig.suptitle("first-layer weights (red < 0 < blue)")
    save_figure(fig, path, dpi=80, tight=False)


def main(argv=None, prog=None):
    args = parse_args(argv, prog)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x_train, y_train = load_digits("train")
    x_test, y_test = load_digits("test")
    # pixels 0..16 scaled to 0..1, images flattened to 64 features
    x_train = torch.tensor(x_train.reshape(-1, 64) / 16.0, dtype=torch.float32)
    x_test = torch.tensor(x_test.reshape(-1, 64) / 16.0, dtype=torch.float32)
    y_train, y_test = torch.tensor(y_train), torch.tensor(y_test)

    model = MLP()
    velocity = [torch.zeros_like(p) for p in model.parameters()]
    momentum = 0.9
    epochs = 1 if args.smoke else args.epochs
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{NAME}: {n_params:,} parameters, {len(x_train)} train / {len(x_test)} test images, "
          f"{epochs} epochs")
    history = {"loss": [], "test_loss": [], "train_acc": [], "test_acc": []}
    start = time.time()
    for epoch in range(1, epochs + 1):
        t0 = time.time()
        order = torch.tensor(rng.permutation(len(x_train)))
        total, correct, seen = 0.0, 0, 0
        for i, lo in enumerate(range(0, len(order), args.batch_size)):
            if args.smoke and i == SMOKE_BATCHES:
                break
            idx = order[lo:lo + args.batch_size]
            logits = model(x_train[idx])
            loss = cross_entropy(logits, y_train[idx])
            for p in model.parameters():
                p.grad = None
            loss.backward()
            with torch.no_grad():  # the update itself must not be recorded by autograd
                for p, v in zip(model.parameters(), velocity):
                    v.mul_(momentum).add_(p.grad)
                    p.sub_(args.lr * v)
            total += loss.item() * len(idx)
            correct += (logits.argmax(1) == y_train[idx]).sum().item()
            seen += len(idx)
        with torch.no_grad():
            test_logits = model(x_test)
            test_loss = cross_entropy(test_logits, y_test).item()
            test_acc = (test_logits.argmax(1) == y_test).float().mean().item()
        history["loss"].append(total / seen)
        history["test_loss"].append(test_loss)
        history["train_acc"].append(correct / seen)
        history["test_acc"].append(test_acc)
        print(f"epoch {epoch:3d}/{epochs}  loss {total / seen:.4f}  train acc "
              f"{correct / seen:7.2%}  test loss {test_loss:.4f}  test acc {test_acc:7.2%}  "
              f"{time.time() - t0:.1f}s", flush=True)
        torch.save({"model": model.state_dict(), "velocity": velocity, "epoch": epoch,
                    "args": vars(args)}, os.path.join(args.out, "last.pt"))
    if save_curves(os.path.join(args.out, "curves.png"), history):
        save_weights(os.path.join(args.out, "weights.png"), model.weights[0].detach().numpy())
    print(f"saved {args.out}/last.pt, curves.png, weights.png; {time.time() - start:.1f}s")
    print(f"final test_acc {history['test_acc'][-1]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
