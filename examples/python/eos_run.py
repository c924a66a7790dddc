"""The edge of stability from Python: GD and SGD on a tanh MLP (½-MSE on one-hot targets, Cohen et al.'s
setting) on 200 shipped MNIST digits, observed every 10 steps by the library's training loop — the loss, the
sharpness λ_max(H) by warm-started Lanczos against 2/η, and under SGD batch sharpness (Monte Carlo, with its
standard error) — plotted with matplotlib when it is installed (eos.png), printed either way.

    pip install ./python && python examples/python/eos_run.py
"""
import numpy as np

import imreg
from mnist_digits import digits

n, steps, lr, batch = 200, 600, 0.2, 25
images, labels = digits(n)
x = images[:, ::2, ::2].reshape(n, -1)  # 14×14 digits
y = np.eye(10)[labels]
model = imreg.Model.from_config({"kind": "mlp", "hidden": [32], "activation": "tanh", "loss": "half_mse"}, x, y)
rng = np.random.default_rng(0)
theta0 = rng.standard_normal(model.p) / np.sqrt(x.shape[1])
print(model, "λ_max(θ₀) =", model.lambda_max(theta0), "2/η =", 2 / lr)

gd = imreg.train(model, theta0, lr, steps, every=10)
sgd = imreg.train(model, theta0, lr, steps, sampler="reshuffling", batch_size=batch, every=10, batch_sharpness=batch)
for name, run in (("GD", gd), ("SGD", sgd)):
    print(f"{name}: {run.outcome}; step, loss, λ_max" + (", batch sharpness ± SE" if run.batch_sharpness is not None else ""))
    for j in range(0, len(run.steps), 10):
        row = f"  {run.steps[j]:4d}  {run.loss[j]:.5f}  {run.lambda_max[j]:.4f}"
        if run.batch_sharpness is not None:
            row += f"  {run.batch_sharpness[j]:.4f} ± {run.batch_sharpness_se[j]:.4f}"
        print(row)

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    plt = None
if plt is not None:
    fig, (ax_loss, ax_sharp) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.semilogy(gd.steps, gd.loss, label="GD")
    ax_loss.semilogy(sgd.steps, sgd.loss, label=f"SGD (b = {batch})")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss")
    ax_loss.legend()
    ax_sharp.plot(gd.steps, gd.lambda_max, label="GD: λ_max")
    ax_sharp.plot(sgd.steps, sgd.lambda_max, label="SGD: λ_max")
    ax_sharp.errorbar(sgd.steps, sgd.batch_sharpness, yerr=sgd.batch_sharpness_se, label="SGD: batch sharpness")
    ax_sharp.axhline(2 / lr, color="k", linestyle="--", label="2/η")
    ax_sharp.set_xlabel("step")
    ax_sharp.legend()
    fig.tight_layout()
    fig.savefig("eos.png")
    print("wrote eos.png")
