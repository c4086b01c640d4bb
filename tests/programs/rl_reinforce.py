"""REINFORCE (policy gradient) on a tiny hand-written corridor, with ``Categorical``.

Written as ordinary PyTorch code in the style of pytorch/examples' ``reinforce.py``: a small
policy network gives action probabilities, ``torch.distributions.Categorical`` scores the
chosen actions (``log_prob``) and adds an entropy bonus, discounted returns are normalised
and Adam takes one step per episode. The corridor has 6 cells; the agent starts in cell 1,
moves left or right, and gets +1 on reaching cell 5 (a small cost per step). Actions are
drawn by inverse CDF from a NumPy generator with a fixed seed (the frameworks' own streams
differ), so both runs follow the same trajectories. Prints one JSON line for the runner.
"""
import json

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import Categorical

RTOL = 1e-3
ATOL = 1e-5

N_CELLS = 6
GAMMA = 0.95


class Corridor:
    """Cells 0..5; action 0 moves left, 1 moves right; the episode ends at cell 5."""

    def reset(self):
        self.pos = 1
        self.t = 0
        return self.pos

    def step(self, action):
        self.pos = max(0, self.pos - 1) if action == 0 else self.pos + 1
        self.t += 1
        done = self.pos == N_CELLS - 1 or self.t >= 12
        reward = 1.0 if self.pos == N_CELLS - 1 else -0.05
        return self.pos, reward, done


class Policy(nn.Module):
    def __init__(self):
        super().__init__()
        self.affine1 = nn.Linear(N_CELLS, 16)
        self.affine2 = nn.Linear(16, 2)
        self.saved_log_probs = []
        self.entropies = []
        self.rewards = []

    def forward(self, x):
        x = torch.tanh(self.affine1(x))
        return F.softmax(self.affine2(x), dim=-1)


def one_hot(state):
    x = torch.zeros(1, N_CELLS)
    x[0, state] = 1.0
    return x


def select_action(policy, state, rng):
    probs = policy(one_hot(state))
    m = Categorical(probs)
    # inverse CDF with a NumPy uniform: the same draw under every framework
    u = rng.random()
    action = torch.tensor([int((probs.detach().cumsum(-1)[0] < u).sum().clamp(max=1))])
    policy.saved_log_probs.append(m.log_prob(action))
    policy.entropies.append(m.entropy())
    return action.item()


def finish_episode(policy, optimizer):
    R = 0.0
    returns = []
    for r in policy.rewards[::-1]:
        R = r + GAMMA * R
        returns.insert(0, R)
    returns = torch.tensor(returns)
    if len(returns) > 1:
        returns = (returns - returns.mean()) / (returns.std() + 1e-6)
    policy_loss = []
    for log_prob, R in zip(policy.saved_log_probs, returns):
        policy_loss.append(-log_prob * R)
    entropy = torch.cat(policy.entropies).mean()
    optimizer.zero_grad()
    loss = torch.cat(policy_loss).sum() - 0.01 * entropy
    loss.backward()
    optimizer.step()
    del policy.rewards[:]
    del policy.saved_log_probs[:]
    del policy.entropies[:]
    return loss.item(), entropy.item()


def main():
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    policy = Policy()
    with torch.no_grad():  # starting weights from NumPy, so both frameworks start equal
        for p in policy.parameters():
            p.copy_(torch.from_numpy(rng.normal(0.0, 0.5, tuple(p.shape)).astype(np.float32)))
    optimizer = torch.optim.Adam(policy.parameters(), lr=2e-2)
    env = Corridor()

    losses, entropies, lengths, totals = [], [], [], []
    for episode in range(25):
        state = env.reset()
        total = 0.0
        for t in range(1, 100):
            action = select_action(policy, state, rng)
            state, reward, done = env.step(action)
            policy.rewards.append(reward)
            total += reward
            if done:
                break
        loss, ent = finish_episode(policy, optimizer)
        losses.append(round(loss, 6))
        entropies.append(round(ent, 6))
        lengths.append(t)
        totals.append(round(total, 4))

    with torch.no_grad():
        probs = policy(torch.eye(N_CELLS))
        dist = Categorical(probs)
        sample_shape = list(dist.sample((3,)).shape)
        right = probs[:, 1]
    print(json.dumps({
        "losses": losses,
        "entropies": entropies,
        "episode_lengths": lengths,
        "episode_returns": totals,
        "p_right": [round(float(v), 6) for v in right],
        "final_entropy": [round(float(v), 6) for v in dist.entropy()],
        "log_prob_right": [round(float(v), 6) for v in dist.log_prob(torch.ones(N_CELLS))],
        "sample_shape": sample_shape,
        "batch_shape": list(dist.batch_shape),
        "weight_norm": round(sum(float(p.detach().norm()) for p in policy.parameters()), 6),
    }))


if __name__ == "__main__":
    main()
