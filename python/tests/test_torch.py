"""The PyTorch converter: a cnn-relu module converted in Python gives imreg analyze's numbers on its
safetensors export, and a module with an unsupported layer raises naming it. Skipped only when torch is not
importable (CI installs the CPU wheels)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import imreg  # noqa: E402
import imreg.torch as itorch  # noqa: E402

from conftest import analyze_json, read_safetensors, write_safetensors  # noqa: E402


def cnn_relu(classes=4, side=12):
    """Cohen et al.'s CNN as a PyTorch module: 2 × (conv 3×3 width 32 padding 1, ReLU, max-pool 2), linear."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * (side // 4) ** 2, classes),
    ).double()


def test_converted_cnn_gives_imreg_analyze_numbers(cnn_case, tmp_path):
    module = cnn_relu()
    weights = read_safetensors(cnn_case["weights"])
    module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    x = torch.from_numpy(cnn_case["x"])
    y = torch.from_numpy(cnn_case["labels"])
    m, theta = itorch.model(module, x, y, nn.CrossEntropyLoss())
    # PyTorch's own loss at these weights
    with torch.no_grad():
        assert m.loss(theta) == pytest.approx(nn.CrossEntropyLoss()(module(x), y).item(), rel=1e-13)
    lam = m.lambda_max(theta)
    tr = m.trace(theta)
    bs = m.batch_sharpness(theta, 2)
    # the module's export, analyzed by the CLI
    export = tmp_path / "module.safetensors"
    write_safetensors(export, {k: v.detach().numpy() for k, v in module.state_dict().items()})
    np.save(tmp_path / "x.npy", cnn_case["x"].reshape(len(cnn_case["x"]), -1))
    np.save(tmp_path / "y.npy", cnn_case["labels"])
    a = analyze_json(
        ["--model", "network", "--preset", "cnn-relu", "--input-shape", "1,12,12", "--classes", "4",
         "--loss", "cross_entropy", "--params", str(export), "--data", "x.npy", "--targets", "y.npy",
         "--batch-size", "2", "--quantities", "lambda_max,trace,batch-sharpness"],
        tmp_path,
    )
    for ours, theirs in (
        (lam, a["hessian_top"][0]),
        (tr.value, a["hessian_trace"]["value"]),
        (bs.mean_of_ratios.value, a["batch_sharpness"]["value"]),
        (bs.ratio_of_means.value, a["batch_sharpness_inside"]["value"]),
    ):
        assert abs(ours - theirs) <= 1e-12 * abs(theirs), (ours, theirs)
    assert tr.estimator == a["hessian_trace"]["estimator"] == "monte_carlo"


def test_converter_spec_and_state_dict():
    module = nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(4), nn.Tanh(),
        nn.AvgPool2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(4 * 2 * 2, 8), nn.GELU(),
        nn.Sequential(nn.Linear(8, 3)),
    ).double().eval()
    c = itorch.from_module(module, [3, 8, 8])
    types = [layer["type"] for layer in c.spec["layers"]]
    assert types == ["conv2d", "batch_norm", "tanh", "avg_pool", "flatten", "identity", "linear", "gelu", "sequential"]
    assert c.spec["batch_norm"] == "eval"
    assert set(c.state_dict) == {
        "0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var", "6.weight", "6.bias", "8.0.weight", "8.0.bias",
    }


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 5)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(5, 2)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Reordered(Block):
    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def test_custom_modules_are_checked_against_their_forward():
    torch.manual_seed(0)
    c = itorch.from_module(Block().double(), [6])
    assert [layer.get("name") for layer in c.spec["layers"]] == ["fc1", None, "fc2"]
    with pytest.raises(itorch.ConversionError) as e:
        itorch.from_module(Reordered().double(), [6])
    assert "differ" in str(e.value)


def test_unsupported_layer_is_named():
    module = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Sequential(nn.Flatten(), nn.LSTM(4, 4)))
    with pytest.raises(itorch.UnsupportedLayerError) as e:
        itorch.from_module(module, [1, 6, 6])
    assert isinstance(e.value, imreg.ImregError) and isinstance(e.value, ValueError)
    assert e.value.layer == "2.1" and "LSTM" in str(e.value)
    with pytest.raises(itorch.UnsupportedLayerError) as e:
        itorch.from_module(nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.2)), [3])
    assert e.value.layer == "1" and "eval" in str(e.value)
    with pytest.raises(itorch.UnsupportedLayerError) as e:
        itorch.loss_name(nn.NLLLoss())
    assert "NLLLoss" in str(e.value)


def test_criteria_map_to_imreg_losses():
    assert itorch.loss_name(nn.CrossEntropyLoss()) == "cross_entropy"
    assert itorch.loss_name(nn.CrossEntropyLoss(label_smoothing=0.1)) == "cross_entropy(label_smoothing=0.1)"
    assert itorch.loss_name(nn.MSELoss()) == "mse"
    assert itorch.loss_name(nn.BCEWithLogitsLoss()) == "logistic"
