"""PyTorch reference values for imreg's network objectives (f64, fixed weights and data).

Builds, from imreg's JSON network spec (interpreted here independently, in PyTorch modules), three cases:

  cnn-relu        Cohen et al.'s CNN preset on 8 examples of 1x12x12, 4 classes
  resnet-bn-eval  a tiny ResNet (two basic blocks with batch norm, a 1x1 projection shortcut) in eval mode,
                  with running statistics from a few training-mode passes, 8 examples of 3x8x8, 3 classes
  resnet-bn-train the same network and weights in training mode (batch statistics)

and two small tanh MLPs (5 -> 8 -> 8 -> 3, P = 147) *trained* in PyTorch by full-batch SGD from PyTorch's
default initialization (`python scripts/torch_fixture.py trained` writes only these):

  mlp-mse         on 24 examples with real targets, loss nn.MSELoss() (mean over examples and outputs)
  mlp-ce-smooth   on 24 examples, 3 classes, loss nn.CrossEntropyLoss(label_smoothing=0.1)

with the data (`x`, and `y` or `labels`), the loss at the final weights, and the dense Hessian's
(torch.autograd.functional.hessian, torch.linalg.eigvalsh) top-3 and bottom-3 eigenvalues and trace.

and writes, for each case, into crates/imreg-objective/tests/fixtures/torch/:
  <case>.safetensors       the state_dict (safetensors.torch.save_file)
  <case>.data.safetensors  inputs X [n, C, H, W] and labels (float64)
  <case>.json              the spec, the loss (mean cross-entropy), the gradient norm and entries, v.Hv and HVP
                           entries for v_k = sin(0.5 k + 1), lambda_max (dense eigvalsh, or 300-step Lanczos with
                           full reorthogonalization) with the top 3 eigenvalues, the exact Hessian trace (all P unit
                           vectors), batch sharpness at b = 2 over all C(n, 2) batches (mean of ratios and ratio of
                           means) and the per-example gradient norms (the gradient of each
                           example's loss with the batch's statistics differentiated through)

Run:  /path/to/venv/bin/python scripts/torch_fixture.py   (needs torch and safetensors)
"""
from __future__ import annotations

import itertools
import json
import math
import os

import torch
from safetensors.torch import save_file

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "imreg-objective", "tests", "fixtures", "torch")
INDICES = [0, 1, 7, 100]
TOP = 3
BATCH = 2


class Residual(torch.nn.Module):
    def __init__(self, body: torch.nn.Module, shortcut: torch.nn.Module | None):
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x):
        return self.body(x) + (x if self.shortcut is None else self.shortcut(x))


class Concat(torch.nn.Module):
    def __init__(self, branches):
        super().__init__()
        self.branches = torch.nn.ModuleList(branches)

    def forward(self, x):
        return torch.cat([b(x) for b in self.branches], dim=1)


class GlobalAvgPool(torch.nn.Module):
    def forward(self, x):
        return x.mean((2, 3))


def pair(v):
    return tuple(v) if isinstance(v, list) else (v, v)


class Named(torch.nn.Module):
    """A container whose children carry imreg's state_dict names (dots become nested modules)."""

    def __init__(self):
        super().__init__()
        self.order = []

    def put(self, name: str, module: torch.nn.Module):
        parts = name.split(".")
        node = self
        for p in parts[:-1]:
            if not hasattr(node, p):
                node.add_module(p, Named())
            node = getattr(node, p)
        node.add_module(parts[-1], module)


def build(layers, shape, root: Named, prefix: str):
    """Returns (list of callables in order, output shape); modules with parameters registered in root by name."""
    steps = []
    for k, layer in enumerate(layers):
        t = layer["type"]
        name = layer.get("name", str(k))
        full = name if not prefix else (prefix if name == "" else f"{prefix}.{name}")
        if t == "conv2d":
            c, h, w = shape
            m = torch.nn.Conv2d(c, layer["out_channels"], pair(layer["kernel_size"]), pair(layer.get("stride", 1)),
                                pair(layer.get("padding", 0)), pair(layer.get("dilation", 1)),
                                layer.get("groups", 1), layer.get("bias", True))
            root.put(full, m)
            y = m(torch.zeros(1, c, h, w))
            shape = tuple(y.shape[1:])
            steps.append(m)
        elif t == "linear":
            m = torch.nn.Linear(shape[0], layer["out_features"], layer.get("bias", True))
            root.put(full, m)
            shape = (layer["out_features"],)
            steps.append(m)
        elif t == "batch_norm":
            m = torch.nn.BatchNorm2d(shape[0], eps=layer.get("eps", 1e-5)) if len(shape) == 3 else \
                torch.nn.BatchNorm1d(shape[0], eps=layer.get("eps", 1e-5))
            root.put(full, m)
            steps.append(m)
        elif t == "max_pool":
            k_ = pair(layer["kernel_size"])
            m = torch.nn.MaxPool2d(k_, pair(layer.get("stride", layer["kernel_size"])), pair(layer.get("padding", 0)))
            shape = tuple(m(torch.zeros(1, *shape)).shape[1:])
            steps.append(m)
        elif t == "relu":
            steps.append(torch.nn.ReLU())
        elif t == "tanh":
            steps.append(torch.nn.Tanh())
        elif t == "flatten":
            steps.append(torch.nn.Flatten())
            shape = (math.prod(shape),)
        elif t == "global_avg_pool":
            steps.append(GlobalAvgPool())
            shape = (shape[0],)
        elif t == "residual":
            body, out = build(layer["body"], shape, root, full)
            sc = layer.get("shortcut", [])
            short, _ = build(sc, shape, root, f"{full}.{layer.get('shortcut_name', 'shortcut')}") if sc else (None, None)
            steps.append(Residual(torch.nn.Sequential(*body), None if short is None else torch.nn.Sequential(*short)))
            shape = out
        elif t == "sequential":
            inner, shape = build(layer["layers"], shape, root, full)
            steps.append(torch.nn.Sequential(*inner))
        else:
            raise ValueError(f"layer type {t} is not used by the fixtures")
    return steps, shape


def cnn_relu_spec():
    conv = lambda: {"type": "conv2d", "out_channels": 32, "kernel_size": 3, "padding": 1}
    pool = {"type": "max_pool", "kernel_size": 2}
    return {"name": "cnn-relu", "input": [1, 12, 12], "batch_norm": "train",
            "layers": [conv(), {"type": "relu"}, pool, conv(), {"type": "relu"}, pool, {"type": "flatten"},
                       {"type": "linear", "out_features": 4}]}


def resnet_spec(mode):
    conv = lambda name, out, stride=1: {"type": "conv2d", "name": name, "out_channels": out, "kernel_size": 3,
                                        "stride": stride, "padding": 1, "bias": False}
    bn = lambda name: {"type": "batch_norm", "name": name}
    block = lambda out, stride, shortcut: {"type": "sequential", "name": "0", "layers": [
        {"type": "residual", "name": "", "body": [conv("conv1", out, stride), bn("bn1"), {"type": "relu"},
                                                  conv("conv2", out), bn("bn2")], "shortcut": shortcut},
        {"type": "relu"}]}
    proj = [{"type": "conv2d", "name": "0", "out_channels": 8, "kernel_size": 1, "stride": 2, "bias": False},
            bn("1")]
    return {"name": "resnet-tiny", "input": [3, 8, 8], "batch_norm": mode, "layers": [
        conv("conv1", 4), bn("bn1"), {"type": "relu"},
        {"type": "sequential", "name": "layer1", "layers": [block(4, 1, [])]},
        {"type": "sequential", "name": "layer2", "layers": [block(8, 2, proj)]},
        {"type": "global_avg_pool"}, {"type": "linear", "name": "fc", "out_features": 3}]}


def model_of(spec):
    root = Named()
    steps, _ = build(spec["layers"], tuple(spec["input"]), root, "")
    return root, torch.nn.Sequential(*steps)


def make_case(case, spec, n, classes, seed, running_passes=0):
    torch.manual_seed(seed)
    root, net = model_of(spec)
    with torch.no_grad():
        for name, p in root.named_parameters():
            if p.dim() == 1 and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif p.dim() > 1:
                fan_in = p[0].numel()
                p.copy_(torch.randn_like(p) / math.sqrt(fan_in))
    X = torch.randn(n, *spec["input"])
    labels = torch.arange(n) % classes
    if running_passes:
        net.train()
        with torch.no_grad():
            for _ in range(running_passes):
                net(torch.randn(n, *spec["input"]) * 1.5 + 0.3)
    net.train(spec["batch_norm"] == "train")
    names = [k for k, _ in root.named_parameters()]
    params = [p for _, p in root.named_parameters()]
    P = sum(p.numel() for p in params)

    def loss_of(flat, rows=None):
        rows = torch.arange(n) if rows is None else rows
        ps = torch.split(flat, [p.numel() for p in params])
        state = {k: v.view_as(p) for k, v, p in zip(names, ps, params)}
        buffers = dict(root.named_buffers())
        out = torch.func.functional_call(root_call, {**state, **buffers}, (X[rows],))
        return torch.nn.functional.cross_entropy(out, labels[rows], reduction="none")

    root_call = root
    root.forward = lambda x: net(x)  # the registered modules are the ones `net` runs
    theta = torch.cat([p.detach().reshape(-1) for p in params]).clone()

    def mean_loss(flat):
        return loss_of(flat).mean()

    # functional_call on `root` swaps parameters and buffers by name; the BN running stats are not updated in
    # train mode because we pass them as plain tensors and discard the module state afterwards.
    state_before = {k: v.clone() for k, v in root.state_dict().items()}
    t = theta.clone().requires_grad_(True)
    f = mean_loss(t)
    (g,) = torch.autograd.grad(f, t, create_graph=True)
    v = torch.sin(0.5 * torch.arange(P, dtype=torch.float64) + 1.0)
    (hv,) = torch.autograd.grad(g, t, v, retain_graph=True)

    def hvp(u):
        (r,) = torch.autograd.grad(g, t, u, retain_graph=True)
        return r.detach()

    # Exact trace: the diagonal of H from all P unit vectors, in blocks (batched double backward).
    trace = 0.0
    for start in range(0, P, 512):
        m = min(512, P - start)
        E = torch.zeros(m, P)
        E[torch.arange(m), start + torch.arange(m)] = 1.0
        (HE,) = torch.autograd.grad(g, t, E, retain_graph=True, is_grads_batched=True)
        trace += HE[:, start: start + 512].diagonal().sum().item()

    if P <= 3000:
        H = torch.stack([hvp(e) for e in torch.eye(P)])
        evals = torch.linalg.eigvalsh(0.5 * (H + H.T))
        lam = evals[-1].item()
        top = evals.flip(0)[:TOP].tolist()
        how = "dense eigvalsh"
    else:
        steps = 300
        Q = torch.zeros(steps + 1, P)
        q = torch.ones(P) / math.sqrt(P)
        Q[0] = q
        a, b = [], []
        for j in range(steps):
            w = hvp(Q[j])
            a.append(torch.dot(w, Q[j]).item())
            w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
            w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
            beta = w.norm().item()
            b.append(beta)
            Q[j + 1] = w / beta
        T = torch.diag(torch.tensor(a)) + torch.diag(torch.tensor(b[:-1]), 1) + torch.diag(torch.tensor(b[:-1]), -1)
        ritz = torch.linalg.eigvalsh(T)
        lam = ritz[-1].item()
        top = ritz.flip(0)[:TOP].tolist()
        how = f"Lanczos, {steps} steps, full reorthogonalization"

    # Batch sharpness at b = BATCH over all C(n, b) batches (each batch's loss with its own statistics in
    # training mode): the mean of g_B'H_B g_B / |g_B|^2, and E[g_B'H_B g_B] / E[|g_B|^2].
    ratios, num, den = [], 0.0, 0.0
    for rows in itertools.combinations(range(n), BATCH):
        tb = theta.clone().requires_grad_(True)
        (gb,) = torch.autograd.grad(loss_of(tb, torch.tensor(rows)).mean(), tb, create_graph=True)
        (hgb,) = torch.autograd.grad(gb, tb, gb.detach())
        q, s2 = torch.dot(gb.detach(), hgb).item(), torch.dot(gb, gb).item()
        ratios.append(q / s2)
        num += q
        den += s2
    batch_sharpness = sum(ratios) / len(ratios)
    batch_sharpness_inside = num / den

    per = []
    losses = loss_of(t)
    for k in range(n):
        (gk,) = torch.autograd.grad(losses[k], t, retain_graph=True)
        per.append(gk.norm().item())
    root.load_state_dict(state_before)

    os.makedirs(OUT, exist_ok=True)
    sd = {k: v.contiguous() for k, v in root.state_dict().items()}
    save_file(sd, os.path.join(OUT, f"{case}.safetensors"))
    save_file({"x": X.contiguous(), "labels": labels.to(torch.float64)}, os.path.join(OUT, f"{case}.data.safetensors"))
    idx = [i for i in INDICES if i < P] + [P - 1]
    record = {
        "case": case, "spec": spec, "n": n, "classes": classes, "n_params": P,
        "loss": f.item(), "grad_norm": g.norm().item(), "grad_entries": {str(i): g[i].item() for i in idx},
        "probe": "v_k = sin(0.5 k + 1)", "vhv": torch.dot(v, hv).item(),
        "hvp_entries": {str(i): hv[i].item() for i in idx},
        "lambda_max": lam, "lambda_max_method": how, "lambda_top": top, "hessian_trace": trace,
        "hessian_trace_method": "exact: the sum of e_k'He_k over all unit vectors",
        "batch_size": BATCH, "batch_sharpness": batch_sharpness, "batch_sharpness_inside": batch_sharpness_inside, "per_example_grad_norms": per,
        "torch": torch.__version__,
    }
    with open(os.path.join(OUT, f"{case}.json"), "w") as fh:
        json.dump(record, fh, indent=1)
    print(case, P, record["loss"], lam)


def trained_mlp(case, criterion, regression, seed, steps=300, lr=0.1, n=24):
    torch.manual_seed(seed)
    spec = {"name": case, "input": [5], "layers": [
        {"type": "linear", "out_features": 8}, {"type": "tanh"},
        {"type": "linear", "out_features": 8}, {"type": "tanh"},
        {"type": "linear", "out_features": 3}]}
    root, net = model_of(spec)
    X = torch.randn(n, 5)
    target = torch.randn(n, 3) if regression else torch.arange(n) % 3
    opt = torch.optim.SGD(root.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        criterion(net(X), target).backward()
        opt.step()
    names = [k for k, _ in root.named_parameters()]
    params = [p.detach().clone() for _, p in root.named_parameters()]
    theta = torch.cat([p.reshape(-1) for p in params])

    def loss_of(flat):
        ps = torch.split(flat, [p.numel() for p in params])
        state = {k: v.view_as(p) for k, v, p in zip(names, ps, params)}
        root.forward = lambda x: net(x)
        return criterion(torch.func.functional_call(root, state, (X,)), target)

    H = torch.autograd.functional.hessian(loss_of, theta)
    ev = torch.linalg.eigvalsh(0.5 * (H + H.T))
    os.makedirs(OUT, exist_ok=True)
    save_file({k: v.contiguous() for k, v in root.state_dict().items()}, os.path.join(OUT, f"{case}.safetensors"))
    data = {"x": X.contiguous()}
    data["y" if regression else "labels"] = target.to(torch.float64).contiguous()
    save_file(data, os.path.join(OUT, f"{case}.data.safetensors"))
    record = {
        "case": case, "spec": spec, "n": n, "n_params": theta.numel(), "criterion": repr(criterion),
        "training": f"full-batch SGD, lr {lr}, {steps} steps, seed {seed}",
        "loss": loss_of(theta).item(),
        "lambda_top": ev.flip(0)[:3].tolist(), "lambda_bottom": ev[:3].tolist(),
        "hessian_trace": torch.trace(H).item(),
        "method": "dense: torch.autograd.functional.hessian, torch.linalg.eigvalsh",
        "torch": torch.__version__,
    }
    with open(os.path.join(OUT, f"{case}.json"), "w") as fh:
        json.dump(record, fh, indent=1)
    print(case, record["n_params"], record["loss"], record["lambda_top"][0])


if __name__ == "__main__":
    import sys
    trained_mlp("mlp-mse", torch.nn.MSELoss(), True, seed=3)
    trained_mlp("mlp-ce-smooth", torch.nn.CrossEntropyLoss(label_smoothing=0.1), False, seed=4)
    if sys.argv[1:] == ["trained"]:
        sys.exit(0)
    make_case("cnn-relu", cnn_relu_spec(), 8, 4, seed=1)
    make_case("resnet-bn-eval", resnet_spec("eval"), 8, 3, seed=2, running_passes=3)
    make_case("resnet-bn-train", resnet_spec("train"), 8, 3, seed=2, running_passes=3)
