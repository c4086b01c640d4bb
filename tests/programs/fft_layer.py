"""An FNO-style spectral convolution layer: rfft2, a complex weight on the low modes, irfft2.

Written as ordinary PyTorch code after the Fourier Neural Operator reference layer
(``SpectralConv2d``): the input's 2-D real FFT is multiplied, on its lowest ``modes``
frequencies (the top and bottom rows of the one-sided spectrum), by complex ``nn.Parameter``
weights with ``einsum``, and ``irfft2`` brings it back to the grid. Two Fourier layers with
pointwise 1x1 convolutions and GELU learn a smoothing operator on random fields; Adam takes
a few steps (complex parameters are updated as real pairs, as PyTorch does). The JSON line
holds the losses and parameter summaries for the runner to compare.
"""
import json

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

RTOL = 2e-4


class SpectralConv2d(nn.Module):
    def __init__(self, in_channels, out_channels, modes1, modes2):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.modes1, self.modes2 = modes1, modes2
        self.scale = 1 / (in_channels * out_channels)
        shape = (in_channels, out_channels, modes1, modes2)
        self.weights1 = nn.Parameter(self.scale * torch.rand(*shape, dtype=torch.cfloat))
        self.weights2 = nn.Parameter(self.scale * torch.rand(*shape, dtype=torch.cfloat))

    def compl_mul2d(self, input, weights):
        # (batch, in_channel, x, y), (in_channel, out_channel, x, y) -> (batch, out_channel, x, y)
        return torch.einsum("bixy,ioxy->boxy", input, weights)

    def forward(self, x):
        batchsize = x.shape[0]
        x_ft = torch.fft.rfft2(x)
        out_ft = torch.zeros(batchsize, self.out_channels, x.size(-2), x.size(-1) // 2 + 1,
                             dtype=torch.cfloat, device=x.device)
        out_ft[:, :, :self.modes1, :self.modes2] = \
            self.compl_mul2d(x_ft[:, :, :self.modes1, :self.modes2], self.weights1)
        out_ft[:, :, -self.modes1:, :self.modes2] = \
            self.compl_mul2d(x_ft[:, :, -self.modes1:, :self.modes2], self.weights2)
        return torch.fft.irfft2(out_ft, s=(x.size(-2), x.size(-1)))


class FNO2d(nn.Module):
    def __init__(self, modes=4, width=8):
        super().__init__()
        self.fc0 = nn.Linear(3, width)  # the field value and the two grid coordinates
        self.conv0 = SpectralConv2d(width, width, modes, modes)
        self.conv1 = SpectralConv2d(width, width, modes, modes)
        self.w0 = nn.Conv2d(width, width, 1)
        self.w1 = nn.Conv2d(width, width, 1)
        self.fc1 = nn.Linear(width, 16)
        self.fc2 = nn.Linear(16, 1)

    def forward(self, x):
        b, sx, sy, _ = x.shape
        gx = torch.linspace(0, 1, sx).reshape(1, sx, 1, 1).repeat(b, 1, sy, 1)
        gy = torch.linspace(0, 1, sy).reshape(1, 1, sy, 1).repeat(b, sx, 1, 1)
        x = self.fc0(torch.cat((x, gx, gy), dim=-1)).permute(0, 3, 1, 2)
        x = F.gelu(self.conv0(x) + self.w0(x))
        x = self.conv1(x) + self.w1(x)
        x = x.permute(0, 2, 3, 1)
        return self.fc2(F.gelu(self.fc1(x)))


def smooth(u, keep=3):
    """The target operator: keep only the lowest ``keep`` frequencies of each field."""
    spec = np.fft.rfft2(u, axes=(1, 2))
    mask = np.zeros(spec.shape[1:3])
    mask[:keep, :keep] = 1
    mask[-keep:, :keep] = 1
    return np.fft.irfft2(spec * mask[None, :, :, None], s=u.shape[1:3], axes=(1, 2))


def main():
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    model = FNO2d()
    with torch.no_grad():  # starting weights from NumPy, so every framework starts equal
        for name, p in model.named_parameters():
            if p.is_complex():
                w = rng.uniform(0, 1, p.shape) + 1j * rng.uniform(0, 1, p.shape)
                p.copy_(torch.from_numpy((w / 64).astype(np.complex64)))
            else:
                p.copy_(torch.from_numpy(rng.normal(0.0, 0.3, tuple(p.shape)).astype(np.float32)))
    u = rng.normal(size=(4, 12, 12, 1)).astype(np.float32)
    x, y = torch.from_numpy(u), torch.from_numpy(smooth(u).astype(np.float32))

    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(4):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(round(loss.item(), 6))
    w = model.conv0.weights1.detach()
    g = model.conv1.weights2.grad
    print(json.dumps({
        "losses": losses,
        "weights1_dtype": str(w.dtype).split(".")[-1],
        "weights1_abs_mean": round(float(w.abs().mean()), 6),
        "weights1_angle_sum": round(float(w.angle().sum()), 4),
        "weights1_first": [round(float(v), 6) for v in torch.view_as_real(w[0, 0, 0, :2])
                           .reshape(-1)],
        "grad_weights2_norm": round(float(g.norm()), 6),
        "exp_avg_sq_dtype": str(opt.state[model.conv0.weights1]["exp_avg_sq"].dtype)
        .split(".")[-1],
    }))


if __name__ == "__main__":
    main()
