"""PyHessian-style analysis of a CNN from Python: λ_max with its eigenvector, the top eigenvalues, Tr H with
its standard error, the spectral density, batch sharpness and the gradient noise, on 200 shipped MNIST digits.

    pip install ./python torch && python examples/python/pyhessian_cnn.py
"""
import gzip
import os
import struct

import numpy as np
import torch

import imreg
import imreg.torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "crates", "imreg-objective", "data", "mnist")


def read_idx(name, magic):
    raw = gzip.open(os.path.join(DATA, name)).read()
    dims = struct.unpack(">" + "I" * (magic & 0xFF), raw[4 : 4 + 4 * (magic & 0xFF)])
    return np.frombuffer(raw[4 + 4 * len(dims) :], dtype=np.uint8).reshape(dims)


n = 200
x = torch.from_numpy(read_idx("train-images-idx3-ubyte.gz", 0x803)[:n] / 255.0).reshape(-1, 1, 28, 28)
y = torch.from_numpy(read_idx("train-labels-idx1-ubyte.gz", 0x801)[:n].astype(np.int64))
torch.manual_seed(0)
net = torch.nn.Sequential(
    torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 10),
).double()

model, theta = imreg.torch.model(net, x, y, torch.nn.CrossEntropyLoss())
print(model, "loss", model.loss(theta))
eig = model.eigenvalues(theta, top=3, vectors=True)
print("top eigenvalues", eig.top, "Lanczos steps", eig.iterations, "residual bounds", eig.top_residuals)
print("Tr H", model.trace(theta))
density = model.density(theta, probes=4, steps=40)
print("SLQ: Tr H ≈", density.trace.value, "±", density.trace.std_error)
bs = model.batch_sharpness(theta, 16, mc_batches=200)
print("batch sharpness (b = 16)", bs.mean_of_ratios.value, "±", bs.mean_of_ratios.std_error)
print("Tr K (Γ) and Tr F", model.gradient_noise(theta))
try:
    import matplotlib.pyplot as plt

    plt.semilogy(density.grid, density.density + 1e-12)
    plt.xlabel("eigenvalue λ")
    plt.ylabel("density")
    plt.savefig("density.png")
    print("wrote density.png")
except ImportError:
    pass
