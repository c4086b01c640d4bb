"""A two-layer graph convolutional network (Kipf & Welling, 2017) on a small random graph.

Written as ordinary PyTorch code in the style of public GCN examples: the normalised
adjacency ``D^-1/2 (A + I) D^-1/2`` is built once as a sparse COO tensor and every layer
propagates with ``torch.sparse.mm(adj, X W)``; a few Adam steps on the labelled nodes. A
second pass makes the edge weights a leaf and backpropagates into them (the gradient of a
sparse tensor's values). The graph, features and starting weights come from NumPy with a
fixed seed. Prints one JSON line of numbers for the runner to compare.
"""
import json

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

N_NODES, N_FEAT, N_HIDDEN, N_CLASSES = 40, 8, 16, 3


def random_graph(rng):
    """Edge list of an undirected graph whose nodes cluster by class, plus the labels."""
    labels = rng.integers(0, N_CLASSES, size=N_NODES)
    same = labels[:, None] == labels[None, :]
    p = np.where(same, 0.25, 0.03)
    upper = np.triu(rng.random((N_NODES, N_NODES)) < p, 1)
    adj = upper | upper.T
    return adj, labels


def normalised_adjacency(adj):
    """(indices, values) of D^-1/2 (A + I) D^-1/2 in COO form."""
    a = adj.astype(np.float64) + np.eye(N_NODES)
    d = a.sum(1) ** -0.5
    norm = d[:, None] * a * d[None, :]
    rows, cols = np.nonzero(norm)
    return np.stack([rows, cols]), norm[rows, cols].astype(np.float32)


class GraphConvolution(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)

    def forward(self, x, adj):
        return torch.sparse.mm(adj, self.linear(x))


class GCN(nn.Module):
    def __init__(self):
        super().__init__()
        self.gc1 = GraphConvolution(N_FEAT, N_HIDDEN)
        self.gc2 = GraphConvolution(N_HIDDEN, N_CLASSES)

    def forward(self, x, adj):
        return self.gc2(F.relu(self.gc1(x, adj)), adj)


def main():
    rng = np.random.default_rng(0)
    adj_np, labels_np = random_graph(rng)
    indices, values = normalised_adjacency(adj_np)
    adj = torch.sparse_coo_tensor(torch.from_numpy(indices), torch.from_numpy(values),
                                  (N_NODES, N_NODES)).coalesce()
    onehot = np.eye(N_CLASSES)[labels_np]
    feats = (onehot @ rng.normal(size=(N_CLASSES, N_FEAT)) +
             rng.normal(size=(N_NODES, N_FEAT))).astype(np.float32)
    x = torch.from_numpy(feats)
    y = torch.from_numpy(labels_np)
    train = torch.arange(N_NODES) % 2 == 0

    model = GCN()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(rng.normal(0.0, 0.3, tuple(p.shape)).astype(np.float32)))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = F.cross_entropy(model(x, adj)[train], y[train])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        pred = model(x, adj).argmax(1)
    acc = (pred[~train] == y[~train]).float().mean().item()

    # the gradient of the loss with respect to the edge weights (the sparse values)
    w = adj.values().clone().requires_grad_()
    adj_w = torch.sparse_coo_tensor(adj.indices(), w, adj.shape)
    F.cross_entropy(model(x, adj_w)[train], y[train]).backward()
    # torch.mm with a sparse first operand agrees with sparse.mm
    h = model.gc1.linear(x)
    diff = (torch.mm(adj, h) - torch.sparse.mm(adj, h)).abs().max().item()

    print(json.dumps({
        "nnz": adj._nnz(),
        "coalesced": adj.is_coalesced(),
        "losses": [round(v, 5) for v in losses],
        "test_accuracy": round(acc, 5),
        "edge_grad_norm": round(w.grad.norm().item(), 5),
        "edge_grad_nonzero": int((w.grad != 0).sum().item()),
        "row_sum_degree": round(torch.sparse.sum(adj, dim=1).to_dense().sum().item(), 4),
        "mm_vs_sparse_mm": diff < 1e-5,
    }))


if __name__ == "__main__":
    main()
