"""The released predictor training, ported line by line, to check the package against it.

Source: yangyifei729/LESA, ``train_LESA.ipynb`` (the per-weight-type loop). Kept as the notebook has
it: ``SimpleNN`` (Linear 2d->256, ReLU, Linear 256->256, ReLU, Linear 256->d), the sliding-window
data (rows of [V_{i-1}, V_{i+1}] -> V_i for i = 1..L-2), a ``TensorDataset`` in a
``DataLoader(batch_size=64, shuffle=True)``, ``nn.MSELoss`` for both the element-wise term and the
norm term (on the two batch Frobenius norms), ``AdamW(lr=1e-3)`` with every other setting at its
default, 10 epochs, ``loss.backward()``. The only addition is the seeding the package uses
(``torch.manual_seed(seed)`` before the network is built; the release seeds nothing), so that a run
is reproducible and can be compared with the package bit for bit.

What "faithful" means here: ``lesa.grow.predictor.train_predictor`` with ``PredictorConfig(recipe=
"released")`` (same seed, epochs, lam, one CPU thread) produces the same predictor weights, and so the
same predicted layers, as ``train_released`` below, bit for bit. tests/test_reference.py checks it on
the k_proj weights of the real SmolLM2-135M. The package's default recipe draws its shuffling from
its own seeded generator instead (same distribution of orders, other orders), see
``PredictorConfig.recipe``.

This module is a test oracle, not a second implementation to use: it is slow (autograd, a DataLoader
that stacks rows one by one) and takes no options the release does not have.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.optim as optim


class SimpleNN(nn.Module):
    """The release's predictor network, unchanged (attribute names included)."""

    def __init__(self, input_dim, hidden_dim, output_dim):
        super().__init__()
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(hidden_dim, output_dim)

    def forward(self, x):
        x = self.fc1(x)
        x = self.relu1(x)
        x = self.fc2(x)
        x = self.relu2(x)
        x = self.fc3(x)
        return x


def prepare_data_sliding_window(VT_sep):
    """Rows [V_{i-1}, V_{i+1}] -> V_i for every interior layer i, stacked (release: same name)."""
    X_list = []
    Y_list = []
    for i in range(1, len(VT_sep) - 1):
        V1 = VT_sep[i - 1]
        V2 = VT_sep[i]
        V3 = VT_sep[i + 1]
        X = torch.cat([V1, V3], dim=1)
        Y = V2
        X_list.append(X)
        Y_list.append(Y)
    X = torch.cat(X_list, dim=0)
    Y = torch.cat(Y_list, dim=0)
    return X, Y


def released_svd_blocks(weights):
    """The release's factorisation: torch.linalg.svd of the weights concatenated along dim 1, VT cut
    into per-layer blocks. Returns (U*S, [VT_i]). No sign convention (the package adds one, see
    lesa.grow.svd._canonical_signs), so compare trainers on the same blocks, not on two SVDs."""
    concatenated_matrix = torch.cat(list(weights), dim=1)
    U, S, VT = torch.linalg.svd(concatenated_matrix, full_matrices=False)
    y_shape = weights[0].shape[1]
    VT_sep = [VT[:, i * y_shape:(i + 1) * y_shape] for i in range(len(weights))]
    return U * S, VT_sep


def train_released(VT_sep, seed: int = 0, epochs: int = 10, lambda_reg: float = 0.0005,
                   device: str = "cpu", verbose: bool = False):
    """The release's training loop for one weight type on its coefficient blocks (a list of (r, d)
    tensors or an (L, r, d) tensor). Returns (trained SimpleNN in eval mode, mean loss per epoch).
    ``epochs`` and ``lambda_reg`` are the release's two constants (10 and 0.0005), exposed only so a
    test can run fewer epochs."""
    torch.manual_seed(seed)                          # the package's seeding (the release sets none)
    X, Y = prepare_data_sliding_window(list(VT_sep))
    X, Y = X.to(device), Y.to(device)

    input_dim = X.shape[1]
    hidden_dim = 256
    output_dim = Y.shape[1]
    pred_model = SimpleNN(input_dim, hidden_dim, output_dim).to(device)

    criterion = nn.MSELoss(reduction='mean')
    optimizer = optim.AdamW(pred_model.parameters(), lr=0.001)

    batch_size = 64
    dataset = torch.utils.data.TensorDataset(X, Y)
    dataloader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True)

    history = []
    for epoch in range(epochs):
        pred_model.train()
        total_loss = 0
        for batch_X, batch_Y in dataloader:
            optimizer.zero_grad()
            outputs = pred_model(batch_X)
            mse_loss = criterion(outputs, batch_Y)
            norm_loss = criterion(torch.norm(outputs, p=2), torch.norm(batch_Y, p=2))
            loss = (1 - lambda_reg) * mse_loss + lambda_reg * norm_loss
            loss.backward()
            optimizer.step()
            total_loss += loss.item()
        history.append(total_loss / len(dataloader))
        if verbose:
            print(f"Epoch [{epoch + 1}/{epochs}], Loss: {history[-1]:.6f}")
    return pred_model.eval(), history


@torch.no_grad()
def predict_released(pred_model, VT_sep, US, gaps):
    """The release's inference: for each gap k, (U*S) @ G([V_k, V_{k+1}]) (release: k = 15..30)."""
    device = next(pred_model.parameters()).device
    out = []
    for idx in gaps:
        X_eval = torch.cat([VT_sep[idx].to(device), VT_sep[idx + 1].to(device)], dim=1)
        out.append(US @ pred_model(X_eval).to(US.device))
    return out
