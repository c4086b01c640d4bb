"""vae: a variational autoencoder with a 2-D latent space on the digits, drawn and sampled.

Topic 23 (autoencoders and VAEs). The encoder maps each 8x8 digit to a Gaussian q(z|x) =
N(mu, diag(sigma^2)) over a 2-D latent z; the decoder gives Bernoulli pixel probabilities
p(x|z) = sigmoid(decoder(z)) (pixels scaled to [0, 1]). Training maximises the evidence lower
bound ELBO = E_q[log p(x|z)] - KL(q(z|x) || N(0, I)), sampling z = mu + sigma * eps with the
reparameterisation trick so the gradient flows through mu and sigma; the KL term has the
closed form -1/2 sum(1 + log sigma^2 - mu^2 - sigma^2). The KL term pulls the codes towards
N(0, I), so decoding a grid of z draws the whole learnt manifold of digits. -ELBO (with z = mu)
is an anomaly score: the recipe scores the held-out digits against two kinds of anomaly made
from them, their pixels shuffled (no strokes) and two digits blended (strokes, but no digit),
and reports the ROC AUC of each.

Run: ``ember train vae`` or ``python ember/recipes/vae.py`` (``--smoke`` for a few batches).
The only framework line is ``import ember as torch``: swap it for ``import torch`` and the file
runs on PyTorch. Data: ``ember.datasets.load_digits`` (NumPy arrays; UCI optical digits,
CC BY 4.0), its fixed 1,438/359 train/test split. Writes ``last.pt`` (state dicts, in
PyTorch's format), ``curves.png``, ``reconstructions.png``, ``latent.png`` (the codes and the
decoded grid), ``interpolation.png`` and ``anomaly.png`` to ``--out``; the last line printed is
``final test_neg_elbo <nats per image>``.
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

NAME = "vae"
DEFAULTS = dict(epochs=150, lr=2e-3, batch_size=64)
LATENT = 2
SMOKE_BATCHES = 3


def parse_args(argv=None, prog=None):
    """The recipe's flags, validated before any work starts (argparse exits 2 on error)."""
    return recipe_args(argv, prog, __doc__, NAME, DEFAULTS)


class VAE(nn.Module):
    """q(z|x) = N(mu, sigma^2) from the encoder; p(x|z) = Bernoulli(sigmoid(decoder(z)))."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 32),
                                     nn.ReLU(), nn.Linear(32, 2 * LATENT))
        self.decoder = nn.Sequential(nn.Linear(LATENT, 32), nn.ReLU(), nn.Linear(32, 128),
                                     nn.ReLU(), nn.Linear(128, 64))

    def encode(self, x):
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def forward(self, x, sample=True):
        """Decoder logits, mu and log sigma^2; z = mu + sigma * eps when sampling, else mu."""
        mu, logvar = self.encode(x)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu) if sample else mu
        return self.decoder(z), mu, logvar


def neg_elbo(logits, x, mu, logvar):
    """-ELBO per image: Bernoulli reconstruction loss + KL(N(mu, sigma^2) || N(0, I))."""
    rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)
    kl = -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(dim=1)
    return rec + kl


def per_image_error(model, x):
    """The anomaly score: each image's -ELBO with z = mu (no sampling noise)."""
    with torch.no_grad():
        logits, mu, logvar = model(x, sample=False)
        return neg_elbo(logits, x, mu, logvar)


def roc_auc(normal, anomalous):
    """P(score of a random anomaly > score of a random normal image), ties counting half."""
    normal, anomalous = np.asarray(normal), np.asarray(anomalous)
    greater = (anomalous[:, None] > normal[None, :]).mean()
    ties = (anomalous[:, None] == normal[None, :]).mean()
    return float(greater + 0.5 * ties)


def save_figures(out, plt, history, x, x_hat, z, labels, interp, scores):
    """curves, reconstructions, the 2-D latent space, an interpolation, anomaly scores."""
    ep = range(1, len(history["loss"]) + 1)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(ep, history["loss"], label="train")
    ax.plot(ep, history["test_loss"], label="test")
    ax.set(xlabel="epoch", ylabel="-ELBO (nats per image)", title=NAME)
    ax.legend()
    save_figure(fig, os.path.join(out, "curves.png"))

    fig, axes = plt.subplots(2, 10, figsize=(10, 2.4))
    for i in range(10):
        axes[0, i].imshow(x[i].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        axes[1, i].imshow(x_hat[i].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle("test digits (top) and their reconstructions from 2 numbers (bottom)")
    save_figure(fig, os.path.join(out, "reconstructions.png"), dpi=90, tight=False)

    fig, ax = plt.subplots(figsize=(6, 5))
    sc = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=12)
    fig.colorbar(sc, ax=ax, ticks=range(10), label="digit (never seen in training)")
    ax.set(xlabel="z1", ylabel="z2", title="test digits in the 2-D code space")
    save_figure(fig, os.path.join(out, "latent.png"))

    fig, axes = plt.subplots(1, len(interp), figsize=(len(interp), 1.4))
    for ax, img in zip(axes, interp):
        ax.imshow(img.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        ax.axis("off")
    fig.suptitle("decoding the line between two codes")
    save_figure(fig, os.path.join(out, "interpolation.png"), dpi=90, tight=False)

    normal, anomalies = scores
    fig, ax = plt.subplots(figsize=(6, 3.8))
    bins = np.linspace(0, max(v.max() for v in [normal, *anomalies.values()]), 50)
    ax.hist(normal, bins, alpha=0.6, label="test digits")
    for kind, anomalous in anomalies.items():
        ax.hist(anomalous, bins, alpha=0.5,
                label=f"{kind} (ROC AUC {roc_auc(normal, anomalous):.3f})")
    ax.set(xlabel="-ELBO (nats)", ylabel="images",
           title="anomaly scores")
    ax.legend()
    save_figure(fig, os.path.join(out, "anomaly.png"))


def save_manifold(path, plt, z, labels, manifold):
    """The codes of the test digits beside the decoded grid of the latent plane."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 5))
    sc = a.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=12)
    fig.colorbar(sc, ax=a, ticks=range(10), label="digit (never seen in training)")
    a.set(xlabel="z1", ylabel="z2", title="test digits' mu in the 2-D latent space",
          xlim=(-3, 3), ylim=(-3, 3))
    # one blank pixel after each 8x8 tile so neighbouring digits do not run together
    tiles = np.pad(manifold.reshape(15, 15, 8, 8), ((0, 0), (0, 0), (0, 1), (0, 1)))
    tiles = tiles.transpose(0, 2, 1, 3).reshape(135, 135)
    b.imshow(tiles, cmap="gray_r", extent=(-2.5, 2.5, -2.5, 2.5))
    b.set(xlabel="z1", ylabel="z2", title="decoder(z) over the latent plane")
    save_figure(fig, path)


def main(argv=None, prog=None):
    args = parse_args(argv, prog)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x_train, _ = load_digits("train")
    x_test, y_test = load_digits("test")
    x_train = torch.tensor(x_train.reshape(-1, 64) / 16.0, dtype=torch.float32)
    x_test = torch.tensor(x_test.reshape(-1, 64) / 16.0, dtype=torch.float32)

    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    epochs = 1 if args.smoke else args.epochs
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{NAME}: {n_params:,} parameters, {len(x_train)} train / {len(x_test)} test images, "
          f"{epochs} epochs")
    history = {"loss": [], "test_loss": []}
    start = time.time()
    for epoch in range(1, epochs + 1):
        t0 = time.time()
        model.train()
        order = torch.tensor(rng.permutation(len(x_train)))
        total, seen = 0.0, 0
        for i, lo in enumerate(range(0, len(order), args.batch_size)):
            if args.smoke and i == SMOKE_BATCHES:
                break
            x = x_train[order[lo:lo + args.batch_size]]
            logits, mu, logvar = model(x)
            loss = neg_elbo(logits, x, mu, logvar).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(x)
            seen += len(x)
        model.eval()
        with torch.no_grad():
            test_loss = per_image_error(model, x_test).mean().item()
        history["loss"].append(total / seen)
        history["test_loss"].append(test_loss)
        if epoch == 1 or epoch % 10 == 0 or epoch == epochs:
            print(f"epoch {epoch:3d}/{epochs}  -ELBO {total / seen:.3f}  test -ELBO "
                  f"{test_loss:.3f}  {time.time() - t0:.2f}s", flush=True)
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                    "args": vars(args)}, os.path.join(args.out, "last.pt"))

    # anomalies: each test digit with its 64 pixels in a random order (no strokes at all),
    # and each test digit blended half and half with the next one (strokes, but no digit)
    perm = torch.tensor(np.argsort(rng.random((len(x_test), 64)), axis=1))
    anomalies = {"pixels shuffled": torch.gather(x_test, 1, perm),
                 "two digits blended": 0.5 * (x_test + x_test.roll(1, dims=0))}
    normal = per_image_error(model, x_test).numpy()
    anomalies = {k: per_image_error(model, v).numpy() for k, v in anomalies.items()}
    aucs = {k: roc_auc(normal, v) for k, v in anomalies.items()}
    print(f"anomaly detection: mean -ELBO {normal.mean():.4f} on test digits; "
          + "; ".join(f"{k}: {anomalies[k].mean():.4f}, ROC AUC {aucs[k]:.3f}" for k in aucs))
    plt = pyplot()
    if plt is not None:
        with torch.no_grad():
            z, _ = model.encode(x_test)
            # the codes of the first test "0" and the first test "1"
            a, b = z[int(np.flatnonzero(y_test == 0)[0])], z[int(np.flatnonzero(y_test == 1)[0])]
            t = torch.linspace(0, 1, 10)[:, None]
            interp = model.decoder((1 - t) * a + t * b).sigmoid()
            # a 15x15 grid of z over +-2.5 standard deviations of the N(0, I) prior
            g = torch.linspace(-2.5, 2.5, 15)
            grid = torch.stack(torch.meshgrid(g, -g, indexing="xy"), dim=-1).reshape(-1, 2)
            manifold = model.decoder(grid).sigmoid()
            save_figures(args.out, plt, history, x_test.numpy(),
                         model(x_test, sample=False)[0].sigmoid().numpy(), z.numpy(), y_test,
                         interp.numpy(), (normal, anomalies))
            save_manifold(os.path.join(args.out, "latent.png"), plt, z.numpy(), y_test,
                          manifold.numpy())
    print(f"saved {args.out}/last.pt, curves.png, reconstructions.png, latent.png, "
          f"interpolation.png, anomaly.png; {time.time() - start:.1f}s")
    print(f"final test_neg_elbo {history['test_loss'][-1]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
