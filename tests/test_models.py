"""Model shapes, the basic CNN's exact architecture, and pre-trained weights from the hub cache."""

import urllib.error

import pytest
import torch
import torchvision
from torch import nn

from signed_saliency.models import BasicCNN, MissingWeightsError, PretrainedClassifier, build, weights_file


@pytest.mark.parametrize("name", ["cnn", "resnet18", "convnext_tiny"])
def test_models_return_ten_logits(name):
    model = build(name).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_basic_cnn_is_the_authors_architecture():
    model = BasicCNN()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (3, 32, (7, 7), (2, 2), (3, 3)),
        (32, 32, (3, 3), (1, 1), (1, 1)), (32, 32, (3, 3), (2, 2), (1, 1)), (32, 32, (3, 3), (1, 1), (1, 1)),
        (32, 64, (3, 3), (1, 1), (1, 1)), (64, 64, (3, 3), (2, 2), (1, 1)), (64, 64, (3, 3), (1, 1), (1, 1)),
        (64, 128, (3, 3), (1, 1), (1, 1)), (128, 128, (3, 3), (2, 2), (1, 1)), (128, 128, (3, 3), (1, 1), (1, 1)),
    ]  # fmt: skip
    pool = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    assert len(pool) == 1 and (pool[0].kernel_size, pool[0].stride, pool[0].padding) == (3, 2, 1)
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 10
    # Parameters by hand: stem 3·32·49+32; blocks Σ 3×3 convs; head 128·10+10.
    convs_3x3 = [(32, 32), (32, 32), (32, 32), (32, 64), (64, 64), (64, 64), (64, 128), (128, 128), (128, 128)]
    expected = 3 * 32 * 49 + 32 + sum(i * o * 9 + o for i, o in convs_3x3) + 128 * 10 + 10
    assert sum(p.numel() for p in model.parameters()) == expected


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="unknown model"):
        build("vgg16")
    with pytest.raises(ValueError, match="pre-trained"):
        build("cnn", pretrained=True)
    with pytest.raises(ValueError, match="at least 2"):
        build("cnn", num_classes=1)


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty torch hub cache where any download fails at once, as on this machine."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path


def test_pretrained_resnet18_loads_weights_from_the_hub_cache(offline_hub):
    folder, filename = weights_file(torchvision.models.ResNet18_Weights.IMAGENET1K_V1)
    assert folder == str(offline_hub / "hub" / "checkpoints") and filename.startswith("resnet18-")
    torch.manual_seed(7)
    saved = torchvision.models.resnet18().state_dict()
    (offline_hub / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(saved, offline_hub / "hub" / "checkpoints" / filename)

    model = build("resnet18", pretrained=True)
    assert isinstance(model, PretrainedClassifier)
    loaded = model.backbone[1].state_dict()
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters()) and model.head.in_features == 1000
    model.train()
    assert model.head.training and not any(m.training for m in model.backbone.modules())
    # ImageNet normalisation is the first layer: the backbone sees (x - mean) / std.
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = model.backbone[1]((x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
                                     / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))  # fmt: skip
        torch.testing.assert_close(model.features(x), expected)
        assert model(x).shape == (2, 10)


@pytest.mark.parametrize("name", ["resnet18", "convnext_tiny"])
def test_missing_weights_name_the_file_and_folder(offline_hub, name):
    weights = torchvision.models.get_model_weights(name).IMAGENET1K_V1
    folder, filename = weights_file(weights)
    with pytest.raises(MissingWeightsError) as error:
        build(name, pretrained=True)
    assert filename in str(error.value) and folder in str(error.value)
