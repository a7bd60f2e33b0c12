"""Every backbone: forward shapes, no NaN, a gradient for every parameter; local weights; clips."""

import pytest
import torch
from hydra.utils import instantiate

from mouseemo.errors import ConfigError, DataError
from mouseemo.models.components.backbones import TorchvisionBackbone
from mouseemo.models.components.cnn import SmallCNN
from mouseemo.models.components.temporal import CausalConvBlock, TemporalConvNet
from tests.helpers import check_clip_input_errors
from tests.test_configs import FACE_FREE, compose_cfg, options

# frame classifiers with a `net`; the HOG models and the face-free rules have none, the joint encoder
# is tested in test_joint.py
LEARNED = [m for m in options("model") if not m.startswith("hog") and m != "joint" and m not in FACE_FREE]


def test_every_learned_model_config_is_covered():
    assert {"cnn", "resnet18", "resnet34", "efficientnet_b0", "mobilenet_v3_small", "temporal_cnn"} <= set(
        LEARNED
    )


@pytest.mark.parametrize("name", LEARNED)
def test_backbone_forward_and_gradients(name, tmp_path):
    cfg = compose_cfg("train", [f"model={name}"], tmp_path)
    net = instantiate(cfg.model.net)
    torch.manual_seed(0)
    t = getattr(net, "clip_length", 1)
    c = 2 if cfg.model.get("reference") else 1  # the frame, and its change from the session reference
    if cfg.model.get("reference_channels") == "difference":
        c = 1  # the change from the reference alone
    x = torch.randn(2, c, 32, 32) if t == 1 else torch.randn(2, t, c, 32, 32)
    logits = net(x)
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()
    (logits.square().mean() + logits.mean()).backward()
    no_grad = [k for k, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, no_grad[:5]
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())
    net.eval()
    with torch.no_grad():
        emb = net.embed(x)
    assert emb.shape == (2, net.embed_dim)


def test_pretrained_rgb_weights_adapt_to_gray(tmp_path):
    import torchvision

    torch.manual_seed(0)
    rgb = torchvision.models.resnet18(weights=None)  # a stand-in for a downloaded ImageNet file
    path = tmp_path / "resnet18.pth"
    torch.save(rgb.state_dict(), path)
    gray = TorchvisionBackbone("resnet18", in_channels=1, num_classes=7, weights_path=str(path))
    assert gray.body.conv1.weight.shape == (64, 1, 7, 7)
    torch.testing.assert_close(gray.body.conv1.weight, rgb.conv1.weight.sum(dim=1, keepdim=True))
    torch.testing.assert_close(gray.body.layer4[1].conv2.weight, rgb.layer4[1].conv2.weight)
    assert gray.head.weight.shape == (7, 512)  # 1000 ImageNet classes -> 7, newly initialised
    # with a session reference channel each channel starts from the gray kernel, shared out
    two = TorchvisionBackbone("resnet18", in_channels=2, num_classes=7, weights_path=str(path))
    summed = rgb.conv1.weight.sum(dim=1, keepdim=True)
    torch.testing.assert_close(two.body.conv1.weight, summed.repeat(1, 2, 1, 1) / 2)
    # a gray image through the adapted network = the same image in R, G and B through the original
    rgb.fc = torch.nn.Identity()
    rgb.eval(), gray.eval()
    img = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(gray.embed(img), rgb(img.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-5)


def test_weights_saved_from_the_wrapper_reload(tmp_path):
    a = TorchvisionBackbone("mobilenet_v3_small", num_classes=5)
    path = tmp_path / "w.pt"
    torch.save({"state_dict": a.state_dict()}, path)
    b = TorchvisionBackbone("mobilenet_v3_small", num_classes=5, weights_path=str(path))
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb
        torch.testing.assert_close(va, vb)


def test_bad_weights_files(tmp_path):
    with pytest.raises(DataError, match="weights file not found"):
        TorchvisionBackbone("resnet18", weights_path=str(tmp_path / "missing.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00not a torch file")
    with pytest.raises(DataError, match="cannot read weights file"):
        TorchvisionBackbone("resnet18", weights_path=str(junk))
    other = tmp_path / "effnet.pth"
    torch.save(TorchvisionBackbone("efficientnet_b0").state_dict(), other)
    with pytest.raises(DataError, match="does not hold resnet18 weights"):
        TorchvisionBackbone("resnet18", weights_path=str(other))
    with pytest.raises(ConfigError, match="unknown backbone"):
        TorchvisionBackbone("vgg11")


def test_causal_block_never_looks_ahead():
    torch.manual_seed(0)
    block = CausalConvBlock(4, 6, kernel_size=3, dilation=2).eval()
    x = torch.randn(2, 4, 10)
    y = x.clone()
    y[:, :, 7:] += 5.0  # change only the future of t = 6
    with torch.no_grad():
        a, b = block(x), block(y)
    torch.testing.assert_close(a[:, :, :7], b[:, :, :7])
    assert not torch.allclose(a[:, :, 7:], b[:, :, 7:])


def test_temporal_net_sees_the_whole_clip():
    torch.manual_seed(0)
    net = TemporalConvNet(SmallCNN(widths=(8, 16)), clip_length=8, num_classes=7).eval()
    assert net.receptive_field >= 8
    x = torch.rand(2, 8, 1, 24, 32)
    y = x.clone()
    y[:, 0] = torch.rand(2, 1, 24, 32)  # only the oldest frame changes
    with torch.no_grad():
        assert not torch.allclose(net(x), net(y))
    check_clip_input_errors(TemporalConvNet, net, clip_length=8, channels=1)
