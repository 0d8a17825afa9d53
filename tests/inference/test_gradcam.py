"""desktop_app.inference.gradcam: Grad-CAM with hooks, checked against the closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from desktop_app.inference.gradcam import (
    cam_from_features,
    features_cam_difference,
    find_module,
    fine_cam,
    fine_layers,
    grad_cam,
    head_weight,
)
from desktop_app.model.networks import build_network, gradcam_target_layer


class TinyNet(nn.Module):
    """features = the input itself (2 channels), then global average pooling and a linear head.

    With a linear head on average pooling, Grad-CAM's channel weights are the head's weights
    divided by the number of positions, so the map is ReLU(sum_k w_ck x_k) / max: CAM exactly.
    """

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.features = nn.Identity()
        self.head = nn.Linear(2, weight.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(weight)
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.features(x)
        return self.head(a.mean(dim=(2, 3)))


WEIGHT = torch.tensor([[1.0, -0.5], [-1.0, 2.0], [-1.0, -1.0]])


def _input(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 2, 6, 5, generator=g)


class TestClosedForm:
    @pytest.mark.parametrize("label", [0, 1])
    def test_matches_relu_of_the_weighted_sum(self, label: int) -> None:
        net = TinyNet(WEIGHT).eval()
        x = _input()
        result = grad_cam(net, "features", x, [label])
        expected = torch.relu((WEIGHT[label][:, None, None] * x[0]).sum(0))
        expected = (expected / expected.max()).numpy()
        np.testing.assert_allclose(result.maps[label], expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(result.logits, net(x)[0].detach().numpy(), rtol=1e-6)

    def test_several_labels_in_one_pass(self) -> None:
        net = TinyNet(WEIGHT).eval()
        result = grad_cam(net, "features", _input(), [1, 0, 1])
        assert sorted(result.maps) == [0, 1]
        assert all(m.shape == (6, 5) and m.dtype == np.float32 for m in result.maps.values())

    def test_a_label_nothing_supports_gives_an_all_zero_map(self) -> None:
        # label 2 has negative weights on non-negative inputs: every position lowers the score
        result = grad_cam(TinyNet(WEIGHT).eval(), "features", _input(), [2])
        assert not result.maps[2].any()

    def test_the_peak_is_where_the_evidence_is(self) -> None:
        x = torch.zeros(1, 2, 8, 8)
        x[0, 0, 5, 2] = 3.0
        cam = grad_cam(TinyNet(WEIGHT).eval(), "features", x, [0]).maps[0]
        assert np.unravel_index(np.argmax(cam), cam.shape) == (5, 2)
        assert cam.max() == 1.0


class TestLeavesTheNetworkAlone:
    @pytest.mark.parametrize("context", ["plain", "no_grad", "inference_mode"])
    def test_works_in_any_grad_mode_and_leaves_no_trace(self, context: str) -> None:
        net = TinyNet(WEIGHT).eval()
        x = _input()
        mode = {
            "plain": torch.enable_grad(),
            "no_grad": torch.no_grad(),
            "inference_mode": torch.inference_mode(),
        }[context]
        with mode:
            result = grad_cam(net, "features", x, [0])
        assert result.maps[0].max() == pytest.approx(1.0)
        assert not net.features._forward_hooks
        assert all(p.grad is None for p in net.parameters())
        assert not net.training

    def test_hooks_are_removed_when_it_fails(self) -> None:
        net = TinyNet(WEIGHT).eval()
        with pytest.raises(IndexError):
            grad_cam(net, "features", _input(), [7])
        assert not net.features._forward_hooks


class TestErrors:
    def test_one_image_only(self) -> None:
        with pytest.raises(ValueError, match=r"one image \(1, C, H, W\), got \(2, 2, 6, 5\)"):
            grad_cam(TinyNet(WEIGHT), "features", torch.zeros(2, 2, 6, 5), [0])

    def test_unknown_layer(self) -> None:
        with pytest.raises(ValueError, match="the network has no layer 'nope'"):
            find_module(TinyNet(WEIGHT), "nope")


def test_efficientnet_lite_target_layer() -> None:
    torch.manual_seed(0)
    net = build_network("efficientnet-lite0", 3, pretrained=False, image_size=64).eval()
    layer = gradcam_target_layer("efficientnet-lite0")
    x = torch.randn(1, 3, 64, 64)
    result = grad_cam(net, layer, x, [0, 1, 2])
    with torch.no_grad():
        np.testing.assert_allclose(result.logits, net(x)[0].numpy(), rtol=1e-5, atol=1e-6)
    for cam in result.maps.values():
        assert cam.shape == (2, 2)  # 64 / 32
        assert cam.min() >= 0.0 and cam.max() <= 1.0


@pytest.mark.parametrize("arch", ["efficientnet-lite0", "resnet18", "densenet121"])
def test_grad_cam_from_features_is_exact_for_every_architecture(arch: str) -> None:
    """Every network of the registry ends in its target layer, average pooling and one linear
    layer, so Grad-CAM needs no backward pass: the shortcut the engine uses."""
    torch.manual_seed(1)
    net = build_network(arch, 4, pretrained=False, image_size=64).eval()
    x = torch.randn(1, 3, 64, 64)
    diff = features_cam_difference(net, gradcam_target_layer(arch), x, head_weight(net))
    assert diff < 1e-5


def test_cam_from_features_closed_form() -> None:
    a = np.zeros((2, 3, 3), np.float32)
    a[0, 1, 2] = 2.0
    a[1, 0, 0] = 1.0
    maps = cam_from_features(a, np.array([[1.0, -1.0], [0.0, 3.0]], np.float32), [0, 1])
    assert maps[0][1, 2] == 1.0 and maps[0][0, 0] == 0.0  # ReLU drops the negative evidence
    assert maps[1][0, 0] == 1.0 and maps[1].sum() == 1.0
    with pytest.raises(ValueError, match="do not fit"):
        cam_from_features(a, np.zeros((2, 3), np.float32), [0])


class TwoStageNet(nn.Module):
    """``fine`` = the input (2 channels, full grid), ``coarse`` = 2x2 average pooling of it, then
    global average pooling and a linear head: LayerCAM and CAM in closed form."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.fine = nn.Identity()
        self.coarse = nn.AvgPool2d(2)
        self.head = nn.Linear(2, weight.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(weight)
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.coarse(self.fine(x)).mean(dim=(2, 3)))


class TestFineCam:
    @pytest.mark.parametrize("label", [0, 1])
    def test_closed_form_without_blur(self, label: int) -> None:
        """d y / d fine = w / (h w) everywhere (the pooling spreads it evenly), so LayerCAM at
        ``fine`` is ReLU(sum_k ReLU(w_k) x_k) / max, CAM at ``coarse`` is ReLU(sum_k w_k
        pool(x)_k) / max, resized bilinearly to the fine grid; the map is their product."""
        net = TwoStageNet(WEIGHT).eval()
        x = torch.rand(1, 2, 8, 6, generator=torch.Generator().manual_seed(label))
        got = fine_cam(net, ("fine",), "coarse", x, [label], smoothing=0.0)
        w = WEIGHT[label]
        layer = torch.relu((torch.relu(w)[:, None, None] * x[0]).sum(0))
        cam = torch.relu((w[:, None, None] * nn.functional.avg_pool2d(x, 2)[0]).sum(0))
        cam = nn.functional.interpolate(
            (cam / cam.max())[None, None], size=(8, 6), mode="bilinear", align_corners=False
        )[0, 0]
        expected = (layer / layer.max()) * cam
        expected = (expected / expected.max()).numpy()
        np.testing.assert_allclose(got.maps[label], expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got.logits, net(x)[0].detach().numpy(), rtol=1e-6)

    def test_the_peak_is_where_the_evidence_is_and_the_blur_keeps_it(self) -> None:
        x = torch.zeros(1, 2, 16, 16)
        x[0, 0, 11, 4] = 3.0
        for smoothing in (0.0, 1.0):
            cam = fine_cam(TinyNet(WEIGHT).eval(), ("features",), "features", x, [0], smoothing)
            m = cam.maps[0]
            assert np.unravel_index(np.argmax(m), m.shape) == (11, 4)
            assert m.max() == pytest.approx(1.0) and m.min() >= 0.0
        blurred = fine_cam(TinyNet(WEIGHT).eval(), ("features",), "features", x, [0], 1.0)
        assert (blurred.maps[0] > 0.5).sum() > 1  # spread over the neighbours

    def test_a_label_nothing_supports_gives_an_all_zero_map(self) -> None:
        result = fine_cam(TinyNet(WEIGHT).eval(), ("features",), "features", _input(), [2])
        assert not result.maps[2].any()

    def test_leaves_no_trace(self) -> None:
        net = TwoStageNet(WEIGHT).eval()
        with torch.inference_mode():
            fine_cam(net, ("fine",), "coarse", _input(), [0, 1])
        assert not net.fine._forward_hooks and not net.coarse._forward_hooks
        assert all(p.grad is None for p in net.parameters())
        with pytest.raises(IndexError):
            fine_cam(net, ("fine",), "coarse", _input(), [7])
        assert not net.fine._forward_hooks and not net.coarse._forward_hooks

    def test_one_image_only(self) -> None:
        with pytest.raises(ValueError, match=r"fine_cam takes one image"):
            fine_cam(TwoStageNet(WEIGHT), ("fine",), "coarse", torch.zeros(2, 2, 6, 6), [0])

    @pytest.mark.parametrize(
        ("arch", "grid"), [("efficientnet-lite0", 8), ("resnet18", 8), ("densenet121", 8)]
    )
    def test_stride_8_maps_for_every_architecture(self, arch: str, grid: int) -> None:
        torch.manual_seed(2)
        net = build_network(arch, 3, pretrained=False, image_size=64).eval()
        x = torch.randn(1, 3, 64, 64)
        result = fine_cam(net, fine_layers(arch), gradcam_target_layer(arch), x, [0, 1, 2])
        for m in result.maps.values():
            assert m.shape == (grid, grid)  # 64 / 8
            assert m.dtype == np.float32 and m.min() >= 0.0 and m.max() <= 1.0 + 1e-6
