"""genzoo's conformance kit checks that PixelCNN honours the plugin contract."""

import torch

from genzoo.testing import check_model
from genzoo_pixelcnn.model import MaskedConv2d


def test_conformance(tmp_path):
    check_model("pixelcnn", "torch", tmp_path)


def test_a_pixel_never_sees_itself_or_later_pixels():
    conv = MaskedConv2d("A", 1, 1, 3)
    x = torch.zeros(1, 1, 5, 5, requires_grad=True)
    conv(x)[0, 0, 2, 2].backward()
    seen = x.grad[0, 0] != 0
    assert not seen[2, 2:].any() and not seen[3:].any()  # itself, right of it, below
