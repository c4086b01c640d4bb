"""gan: a DCGAN on the 8x8 digits, with sample grids per epoch and a mode-collapse check.

Topic 25 (generative adversarial networks). The generator maps noise z ~ N(0, I) of 32
numbers through transposed convolutions (1x1 -> 2x2 -> 4x4 -> 8x8, batch norm and ReLU
between, tanh at the end) to an image in [-1, 1]; the discriminator mirrors it with strided
convolutions and leaky ReLUs down to one logit. Both play the non-saturating game of
Goodfellow et al. (2014) with DCGAN's settings (Radford et al., 2016: Adam, lr 2e-4,
beta1 = 0.5, N(0, 0.02) weights):

    D maximises  log D(x) + log(1 - D(G(z)))      (BCE: real -> 1, fake -> 0)
    G maximises  log D(G(z))                      (BCE: fake -> 1; stronger gradients early)

Mode collapse (G producing only a few kinds of digit) is measured, not eyeballed: a small
classifier trained on the real digits labels 1,000 generated samples each epoch, and the
entropy of the label histogram (log2(10) = 3.32 bits when every digit is equally common)
says how many modes G covers. The last line is ``final class_entropy_bits <value>``.

Run: ``ember train gan`` or ``python ember/recipes/gan.py`` (``--smoke`` for a few
batches). The only framework line is ``import ember as torch``: swap it for ``import torch`` and
the file runs on PyTorch. Writes ``last.pt`` (the generator's state dict as ``model``, the
discriminator's and both optimizers', in PyTorch's format), ``curves.png`` (both losses,
D's outputs, the class entropy), ``samples_epochNN.png`` (a fixed-noise grid per epoch) and
``modes.png`` to ``--out``.
"""
import math
import os
import sys
import time

import numpy as np

import ember as torch
from ember.datasets import load_digits  # NumPy arrays, the same under PyTorch
from ember.recipes._common import pyplot, recipe_args, save_figure  # plain Python, no ember

nn = torch.nn
F = torch.nn.functional

NAME = "gan"
DEFAULTS = dict(epochs=30, lr=2e-4, batch_size=64)
SMOKE_BATCHES = 3
NZ = 32


def parse_args(argv=None, prog=None):
    """The recipe's flags, validated before any work starts (argparse exits 2 on error)."""
    return recipe_args(argv, prog, __doc__, NAME, DEFAULTS)


class Generator(nn.Module):
    """z (N, 32, 1, 1) -> image (N, 1, 8, 8) in [-1, 1] by three transposed convolutions."""

    def __init__(self, nz=NZ, width=64):
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose2d(nz, width, 2, 1, 0, bias=False),  # 1x1 -> 2x2
            nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),  # -> 4x4
            nn.BatchNorm2d(width // 2), nn.ReLU(),
            nn.ConvTranspose2d(width // 2, 1, 4, 2, 1), nn.Tanh())  # -> 8x8

    def forward(self, z):
        return self.net(z)


class Discriminator(nn.Module):
    """image (N, 1, 8, 8) -> one logit per image (real > 0 > fake)."""

    def __init__(self, width=64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width // 2, 4, 2, 1), nn.LeakyReLU(0.2),  # 8x8 -> 4x4
            nn.Conv2d(width // 2, width, 4, 2, 1, bias=False),  # -> 2x2
            nn.BatchNorm2d(width), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 1, 2, 1, 0))  # -> 1x1

    def forward(self, x):
        return self.net(x).flatten()


def dcgan_init(m):
    """DCGAN's initialisation: conv weights ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def train_judge(x, y, steps):
    """A softmax-regression digit classifier on real images: the referee of mode coverage."""
    judge = nn.Linear(64, 10)
    opt = torch.optim.Adam(judge.parameters(), lr=0.05)
    for _ in range(steps):
        loss = F.cross_entropy(judge(x.flatten(1)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return judge


def class_histogram(judge, images):
    """Fraction of ``images`` the judge assigns to each digit, and its entropy in bits."""
    with torch.no_grad():
        pred = judge(images.flatten(1)).argmax(1)
    hist = torch.bincount(pred, minlength=10).double() / len(pred)
    nz = hist[hist > 0]
    return hist, float(-(nz * nz.log2()).sum()) + 0.0  # + 0.0: no "-0.00"


def save_grid(path, images, title):
    """An 8x8 grid of images (values in [-1, 1])."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(8, 8, figsize=(4, 4.3))
    for img, ax in zip(images, axes.flat):
        ax.imshow(img[0], cmap="gray_r", vmin=-1, vmax=1)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path, dpi=70, tight=False)


def save_curves(path, history):
    """Both players' losses, D's mean output on real and fake, and the class entropy."""
    import matplotlib.pyplot as plt
    ep = range(1, len(history["loss_d"]) + 1)
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(13, 3.5))
    a.plot(ep, history["loss_d"], label="discriminator")
    a.plot(ep, history["loss_g"], label="generator")
    a.set(xlabel="epoch", ylabel="BCE", title="losses of both players")
    a.legend()
    b.plot(ep, history["d_real"], label="D(x), real")
    b.plot(ep, history["d_fake"], label="D(G(z)), fake")
    b.set(xlabel="epoch", ylabel="probability", title="discriminator's outputs", ylim=(0, 1))
    b.legend()
    c.plot(ep, history["entropy"], label="generated")
    c.axhline(math.log2(10), ls="--", c="gray", label="uniform (log2 10)")
    c.set(xlabel="epoch", ylabel="bits", title="entropy of generated digit classes")
    c.legend()
    save_figure(fig, path)


def save_modes(path, hist_real, hist_fake):
    """Share of each digit among real test images and among generated ones."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.2))
    digits = np.arange(10)
    ax.bar(digits - 0.2, hist_real, 0.4, label="real (test set)")
    ax.bar(digits + 0.2, hist_fake, 0.4, label="generated")
    ax.set(xticks=digits, xlabel="digit (as the judge classifies it)", ylabel="share",
           title="mode coverage")
    ax.legend()
    save_figure(fig, path)


def main(argv=None, prog=None):
    args = parse_args(argv, prog)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    plots = pyplot() is not None
    x_train, y_train = load_digits("train")
    x_test, y_test = load_digits("test")
    # pixels 0..16 -> [-1, 1], the range of the generator's tanh
    x_train = torch.tensor(x_train[:, None] / 8.0 - 1.0, dtype=torch.float32)
    x_test = torch.tensor(x_test[:, None] / 8.0 - 1.0, dtype=torch.float32)
    y_train, y_test = torch.tensor(y_train), torch.tensor(y_test)

    judge = train_judge(x_train, y_train, steps=5 if args.smoke else 300)
    with torch.no_grad():
        judge_acc = (judge(x_test.flatten(1)).argmax(1) == y_test).float().mean().item()
    hist_real, entropy_real = class_histogram(judge, x_test)

    gen, disc = Generator(), Discriminator()
    gen.apply(dcgan_init)
    disc.apply(dcgan_init)
    opt_g = torch.optim.Adam(gen.parameters(), lr=args.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=args.lr, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    fixed_z = torch.randn(64, NZ, 1, 1)  # the same noise every epoch, so grids are comparable
    eval_z = torch.randn(1000, NZ, 1, 1)

    epochs = 1 if args.smoke else args.epochs
    print(f"{NAME}: G {sum(p.numel() for p in gen.parameters()):,} / D "
          f"{sum(p.numel() for p in disc.parameters()):,} parameters, {len(x_train)} images, "
          f"{epochs} epochs; judge test acc {judge_acc:.2%}, real-data class entropy "
          f"{entropy_real:.2f} bits")
    history = {k: [] for k in ("loss_d", "loss_g", "d_real", "d_fake", "entropy")}
    start = time.time()
    for epoch in range(1, epochs + 1):
        t0 = time.time()
        gen.train()
        order = torch.randperm(len(x_train))
        sums = dict(loss_d=0.0, loss_g=0.0, d_real=0.0, d_fake=0.0)
        n = 0
        for i, lo in enumerate(range(0, len(order) - args.batch_size + 1, args.batch_size)):
            if args.smoke and i == SMOKE_BATCHES:
                break
            real = x_train[order[lo:lo + args.batch_size]]
            b = len(real)
            fake = gen(torch.randn(b, NZ, 1, 1))
            # discriminator step: real -> 1, fake -> 0 (fake detached: G is not updated here)
            out_real, out_fake = disc(real), disc(fake.detach())
            loss_d = bce(out_real, torch.ones(b)) + bce(out_fake, torch.zeros(b))
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            # generator step, non-saturating: make D call the fakes real
            loss_g = bce(disc(fake), torch.ones(b))
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            sums["loss_d"] += loss_d.item()
            sums["loss_g"] += loss_g.item()
            sums["d_real"] += torch.sigmoid(out_real).mean().item()
            sums["d_fake"] += torch.sigmoid(out_fake).mean().item()
            n += 1
        gen.eval()
        with torch.no_grad():
            grid = gen(fixed_z)
            samples = gen(eval_z)
        hist_fake, entropy = class_histogram(judge, samples)
        for k in sums:
            history[k].append(sums[k] / n)
        history["entropy"].append(entropy)
        print(f"epoch {epoch:3d}/{epochs}  loss D {sums['loss_d'] / n:.4f}  loss G "
              f"{sums['loss_g'] / n:.4f}  D(x) {sums['d_real'] / n:.3f}  D(G(z)) "
              f"{sums['d_fake'] / n:.3f}  class entropy {entropy:.2f} bits  "
              f"{time.time() - t0:.1f}s", flush=True)
        torch.save({"model": gen.state_dict(), "discriminator": disc.state_dict(),
                    "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "epoch": epoch,
                    "args": vars(args)}, os.path.join(args.out, "last.pt"))
        if plots:
            save_grid(os.path.join(args.out, f"samples_epoch{epoch:02d}.png"), grid.numpy(),
                      f"epoch {epoch}: fixed noise")
    # a digit the generator (almost) never makes is a dropped mode
    missing = [d for d in range(10) if hist_fake[d] < 0.02]
    top = int(hist_fake.argmax())
    if entropy < 0.75 * math.log2(10) or missing:
        note = (f"mode collapse seen: {len(missing)} digit(s) under 2% of samples "
                f"({missing}), most common {top} at {float(hist_fake[top]):.0%}")
    else:
        note = (f"no mode collapse seen: all 10 digits generated, most common {top} at "
                f"{float(hist_fake[top]):.0%}")
    print(f"{note}; class entropy {entropy:.2f} bits (real {entropy_real:.2f}, max 3.32)")
    if plots:
        save_curves(os.path.join(args.out, "curves.png"), history)
        save_modes(os.path.join(args.out, "modes.png"), hist_real.numpy(), hist_fake.numpy())
    print(f"saved {args.out}/last.pt, curves.png, samples_epochNN.png, modes.png; "
          f"{time.time() - start:.1f}s")
    print(f"final class_entropy_bits {entropy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
