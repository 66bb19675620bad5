"""Lab 5 as the course writes it, in plain PyTorch: the baseline that bench_lab05.py times `train.py` against.

    python benchmarks/lab05_plain.py path/to/data-03-diabetes.csv

All 759 rows, seed 1, nn.Linear(8, 1) + sigmoid, binary cross-entropy, full-batch SGD lr=1, 100 epochs; prints the
final loss and accuracy on the training rows (the project's `experiment=lab05` reports the same numbers).
"""

import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(1)
table = np.loadtxt(sys.argv[1], delimiter=",", dtype=np.float32)
features, labels = torch.from_numpy(table[:, :-1]), torch.from_numpy(table[:, -1])  # (759, 8), (759,)

model = nn.Linear(8, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=1)
for epoch in range(100):
    probabilities = torch.sigmoid(model(features)).squeeze(-1)
    loss = F.binary_cross_entropy(probabilities, labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

with torch.no_grad():
    probabilities = torch.sigmoid(model(features)).squeeze(-1)
    loss = F.binary_cross_entropy(probabilities, labels)
    accuracy = ((probabilities >= 0.5).float() == labels).float().mean()
print(f"loss {loss.item():.6f} accuracy {accuracy.item():.4f}")
