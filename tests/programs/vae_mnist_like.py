"""A variational autoencoder on 8x8 "images", in the style of the VAE example.

An MLP encoder gives ``mu`` and ``logvar``; the reparameterisation trick draws
``z = mu + eps * exp(logvar / 2)`` (with ``eps`` from NumPy, so both frameworks draw the same
noise); an MLP decoder gives Bernoulli logits; the loss is the summed binary cross-entropy
plus the KL term ``-1/2 sum(1 + logvar - mu^2 - exp(logvar))``. A few Adam steps over
``DataLoader`` batches of random blob images, then an evaluation pass, samples decoded from
fixed latent codes, and the loss's gradient with respect to one input image. The weights come
from NumPy with a fixed seed. Prints one JSON line of numbers for the runner to compare.
"""
import json

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset

RTOL = 1e-3  # float32 sums of 64 pixel losses over a few Adam steps


class VAE(nn.Module):
    def __init__(self, pixels=64, hidden=48, latent=4):
        super().__init__()
        self.fc1 = nn.Linear(pixels, hidden)
        self.fc_mu = nn.Linear(hidden, latent)
        self.fc_logvar = nn.Linear(hidden, latent)
        self.fc3 = nn.Linear(latent, hidden)
        self.fc4 = nn.Linear(hidden, pixels)

    def encode(self, x):
        h = F.relu(self.fc1(x))
        return self.fc_mu(h), self.fc_logvar(h)

    def reparameterize(self, mu, logvar, eps):
        std = torch.exp(0.5 * logvar)
        return mu + eps * std

    def decode(self, z):
        return self.fc4(F.relu(self.fc3(z)))  # logits of the pixels

    def forward(self, x, eps):
        mu, logvar = self.encode(x.view(-1, 64))
        z = self.reparameterize(mu, logvar, eps)
        return self.decode(z), mu, logvar


def loss_function(logits, x, mu, logvar):
    bce = F.binary_cross_entropy_with_logits(logits, x.view(-1, 64), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld, bce, kld


def make_images(rng, n):
    """Soft blobs at random places on an 8x8 grid, in [0, 1]."""
    yy, xx = np.mgrid[0:8, 0:8]
    cy, cx = rng.uniform(1.5, 6.5, (2, n, 1, 1))
    r = rng.uniform(1.0, 2.5, (n, 1, 1))
    img = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r ** 2))
    return img.astype(np.float32).reshape(n, 1, 8, 8)


def init_from_numpy(model, rng):
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.0 if name.endswith("bias") else 1.0 / np.sqrt(p.shape[-1])
            p.copy_(torch.from_numpy(rng.normal(0.0, scale, tuple(p.shape)).astype(np.float32)))


def main():
    rng = np.random.default_rng(0)
    train = torch.from_numpy(make_images(rng, 96))
    test = torch.from_numpy(make_images(rng, 32))
    loader = DataLoader(TensorDataset(train), batch_size=32, shuffle=False)
    model = VAE()
    init_from_numpy(model, rng)
    optimizer = optim.Adam(model.parameters(), lr=1e-2)

    history = []
    for epoch in range(3):
        model.train()
        total = 0.0
        for (data,) in loader:
            eps = torch.from_numpy(rng.standard_normal((data.shape[0], 4)).astype(np.float32))
            optimizer.zero_grad()
            logits, mu, logvar = model(data, eps)
            loss, bce, kld = loss_function(logits, data, mu, logvar)
            loss.backward()
            optimizer.step()
            total += loss.item()
        history.append(total / len(train))

    model.eval()
    with torch.no_grad():
        eps = torch.zeros(len(test), 4)  # the posterior mean
        logits, mu, logvar = model(test, eps)
        test_loss, test_bce, test_kld = (t.item() / len(test)
                                         for t in loss_function(logits, test, mu, logvar))
        codes = torch.from_numpy(rng.standard_normal((4, 4)).astype(np.float32))
        samples = torch.sigmoid(model.decode(codes))

    # the gradient of one image's loss with respect to its pixels
    x = test[:1].clone().requires_grad_(True)
    logits, mu, logvar = model(x, torch.zeros(1, 4))
    loss_function(logits, x, mu, logvar)[0].backward()
    print(json.dumps({"epoch_losses": history, "test_loss": test_loss, "test_bce": test_bce,
                      "test_kld": test_kld, "sample_means": samples.mean(dim=1).tolist(),
                      "input_grad_norm": x.grad.norm().item(),
                      "mu_std": mu.std().item()}))


if __name__ == "__main__":
    main()
