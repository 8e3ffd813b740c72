import warnings

import pytest
import torch
import torch.nn as nn

warnings.filterwarnings("ignore", category=FutureWarning)

from pyro_dirichlet.data import DATA_ENV, data_root  # noqa: E402


class TinyBNNet(nn.Module):
    """conv -> BN -> ReLU -> pool -> conv -> BN -> ReLU -> flatten -> fc -> ReLU -> fc -> ReLU -> fc."""

    prunable_layers = ("conv1", "conv2", "fc1", "fc2")
    input_shape = (1, 12, 12)

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 6, 3), nn.BatchNorm2d(6)
        self.conv2, self.bn2 = nn.Conv2d(6, 8, 3), nn.BatchNorm2d(8)
        self.fc1, self.fc2, self.fc3 = nn.Linear(8 * 3 * 3, 12), nn.Linear(12, 7), nn.Linear(7, 3)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = torch.flatten(torch.relu(self.bn2(self.conv2(x))), 1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


@pytest.fixture
def bn_net():
    torch.manual_seed(0)
    net = TinyBNNet()
    for bn in (net.bn1, net.bn2):  # non-trivial running statistics and affine parameters
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-1, 1)
    return net.eval()


@pytest.fixture(scope="session")
def mnist_root():
    root = data_root()
    if not (root / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        pytest.skip(f"real MNIST not found under {root}; set {DATA_ENV}")
    return str(root)


@pytest.fixture(scope="session")
def cifar_root():
    root = data_root()
    if not (root / "cifar10-jpg" / "test").is_dir() and not (root / "cifar10-jpeg.pt").is_file():
        pytest.skip(f"CIFAR-10 JPEG copy (folder or packed) not found under {root}; set {DATA_ENV}")
    return str(root)
