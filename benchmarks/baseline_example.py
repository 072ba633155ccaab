"""The baseline: a hand-written VAE training loop in the style of pytorch/examples ``vae/main.py``.

Same design as the official example: a ``DataLoader`` over a ``TensorDataset`` with
``shuffle=True``, a module with ``fc1, fc21, fc22, fc3, fc4``, a sigmoid decoder output
and ``binary_cross_entropy(..., reduction="sum")`` plus the analytic KL, Adam. Only
the data source differs (in-memory binarized MNIST instead of torchvision's files).
This file is benchmark code, not part of vaekit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class ExampleVAE(nn.Module):
    def __init__(self, hidden: int = 400, latent: int = 20, d: int = 784):
        super().__init__()
        self.d = d
        self.fc1 = nn.Linear(d, hidden)
        self.fc21 = nn.Linear(hidden, latent)
        self.fc22 = nn.Linear(hidden, latent)
        self.fc3 = nn.Linear(latent, hidden)
        self.fc4 = nn.Linear(hidden, d)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, self.d))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def loss_function(recon_x, x, mu, logvar, d: int = 784):
    bce = F.binary_cross_entropy(recon_x, x.view(-1, d), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def make_loader(x: torch.Tensor, batch_size: int = 128) -> DataLoader:
    return DataLoader(TensorDataset(x), batch_size=batch_size, shuffle=True)


def train_steps(model: ExampleVAE, optimizer, loader: DataLoader, max_steps: int, device: str = "cpu") -> int:
    """Run up to ``max_steps`` optimiser steps through the loader (cycling epochs); return images seen.
    Each batch goes to ``device`` as the example's loop sends it (``data.to(device)``)."""
    model.train()
    seen = steps = 0
    train_loss = 0.0
    while steps < max_steps:
        for (data,) in loader:
            data = data.to(device)
            optimizer.zero_grad()
            recon, mu, logvar = model(data)
            loss = loss_function(recon, data, mu, logvar, model.d)
            loss.backward()
            train_loss += loss.item()  # the example reads the loss every step
            optimizer.step()
            seen += data.shape[0]
            steps += 1
            if steps >= max_steps:
                break
    return seen
