"""genzoo's conformance kit checks that PixelCNN honours the plugin contract."""

import itertools
from types import SimpleNamespace

import torch

from genzoo.testing import check_model
from genzoo_pixelcnn.config import PixelCNNConfig
from genzoo_pixelcnn.evaluate import log_likelihood
from genzoo_pixelcnn.model import MaskedConv2d, PixelCNN


def test_conformance(tmp_path):
    check_model("pixelcnn", "torch", tmp_path)


def test_a_pixel_never_sees_itself_or_later_pixels():
    conv = MaskedConv2d("A", 1, 1, 3)
    x = torch.zeros(1, 1, 5, 5, requires_grad=True)
    conv(x)[0, 0, 2, 2].backward()
    seen = x.grad[0, 0] != 0
    assert not seen[2, 2:].any() and not seen[3:].any()  # itself, right of it, below


def test_the_likelihood_is_exact_it_sums_to_one_over_every_image():
    torch.manual_seed(0)
    model = PixelCNN(PixelCNNConfig(channels=4, layers=1), SimpleNamespace(shape=(2, 3, 1)))
    every = torch.tensor(list(itertools.product([0.0, 1.0], repeat=6))).reshape(-1, 2, 3, 1)
    total = log_likelihood(model.double(), every.double()).exp().sum()
    assert abs(total.item() - 1.0) < 1e-9  # all 64 binary 2x3 images
