"""The scoring copy of a trained module: batch norms folded, channels last, same outputs."""

import torch
from torch import nn

from mouseemo.inference.fast_module import fold_batch_norms, inference_copy
from mouseemo.models.components.cnn import SmallCNN


def trained_like_cnn() -> SmallCNN:
    torch.manual_seed(0)
    net = SmallCNN(in_channels=2, num_classes=5, widths=(8, 16, 32))
    for m in net.modules():  # running statistics away from the identity, as after training
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


def test_folded_copy_scores_as_the_module():
    net = trained_like_cnn()
    x = torch.randn(3, 2, 36, 48)
    fast = inference_copy(net, "cpu")
    assert fast is not net
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 5  # the original is untouched
    assert fast.features[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), net(x), rtol=1e-5, atol=1e-5)


def test_training_modules_and_lone_batch_norms_are_left_alone():
    net = trained_like_cnn().train()
    assert inference_copy(net, "cpu") is net  # batch statistics in training: nothing to fold
    odd = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 1)).eval()
    assert fold_batch_norms(odd) == 0  # a batch norm before its convolution does not fold into it
    assert isinstance(odd[0], nn.BatchNorm2d)
