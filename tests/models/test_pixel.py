"""The trainable pixel branch (kind srm_cnn) and the train_mode of every backbone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from backbone_helpers import batch, scene

from deepfake_kedro.models import BackboneConfig, build_extractor
from deepfake_kedro.models.backbones import is_trainable, state_digest

PIXEL = {"kind": "srm_cnn", "image_size": 64, "options": {"train_crop": 32}}
RESNET18 = {"kind": "resnet", "arch": "resnet18", "image_size": 64}


def test_srm_cnn_is_trainable_by_default_and_small():
    config = BackboneConfig.model_validate(PIXEL)
    assert config.train_mode == "finetune" and config.trainable and is_trainable(PIXEL)
    extractor = build_extractor(config)
    n_params = sum(p.numel() for p in extractor.parameters())
    assert 100_000 <= n_params <= 200_000
    assert extractor.feature_dim == 64 and extractor.lr_scale == 1.0
    assert not any(p.requires_grad for p in extractor.parameters())  # until training


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"train_mode": "frozen"}, "srm_cnn learns from pixels.*train_mode to 'finetune'"),
        ({"weights": "IMAGENET1K_V1"}, "trained from scratch: set weights to 'none'"),
        ({"resize": 128}, "set resize to null"),
        ({"options": {"train_crop": 40}}, "train_crop 40 must be a multiple of 16"),
        ({"options": {"train_crop": 128}}, r"train_crop \(128\) must be <= image_size \(64\)"),
        ({"options": {"widht": [8, 16]}}, "options: widht: Extra inputs are not permitted"),
    ],
)
def test_srm_cnn_refuses_what_it_cannot_honour(override, message):
    with pytest.raises(ValueError, match=message):
        build_extractor({**PIXEL, **override}, param_key="feature_extraction.backbones.pixel")


def test_spectral_has_nothing_to_finetune_and_frozen_identities_are_unchanged():
    with pytest.raises(ValueError, match="no weights to train: set train_mode to 'frozen'"):
        BackboneConfig.model_validate({"kind": "spectral", "train_mode": "finetune"})
    assert not is_trainable({"kind": "resnet"}) and is_trainable(
        {"kind": "resnet", "train_mode": "finetune"}
    )
    identity = build_extractor(RESNET18).identity()
    # A frozen branch's cache key is what it was before train_mode existed.
    assert "train_mode" not in identity and "initial_weights" not in identity


def test_the_srm_layer_reads_residuals_not_content():
    """A smooth image leaves (almost) no residual; a one-grey-level checkerboard does."""
    net = build_extractor({**PIXEL, "options": {"with_rgb": False, "train_crop": 32}}).net
    ramp = np.tile(np.linspace(40, 200, 64), (64, 1))
    smooth = np.repeat(ramp[..., None], 3, axis=2)
    checker = smooth + np.indices((64, 64)).sum(axis=0)[..., None] % 2
    images = torch.from_numpy(np.stack([smooth, checker]).astype(np.float32)).permute(0, 3, 1, 2)
    residual = net.residuals(images)[..., 4:-4, 4:-4].abs().mean(dim=(1, 2, 3))
    assert residual[0] < 1e-3 and residual[1] > 50 * residual[0]


def test_any_input_size_gives_one_embedding():
    extractor = build_extractor(PIXEL)
    with torch.inference_mode():
        full = extractor(batch(scene(64, 0), scene(64, 1)))
        crop = extractor(batch(scene(64, 0)[:32, :32]))
    assert full.shape == (2, 64) and crop.shape == (1, 64)
    assert torch.isfinite(full).all()


def test_trained_weights_name_their_digest_and_reload_to_the_same_identity():
    extractor = build_extractor(PIXEL)
    with torch.no_grad():
        for p in extractor.parameters():
            p.add_(0.01)
    extractor.mark_trained()
    identity = extractor.identity()
    assert identity["weights"] == f"trained:{state_digest(extractor.state_dict())}"
    assert identity["initial_weights"] == "none:seed=0" and identity["train_mode"] == "finetune"
    assert extractor.full_precision

    rebuilt = build_extractor(PIXEL).load_trained(extractor.trained_state())
    assert rebuilt.identity() == identity
    images = batch(scene(64, 2))
    with torch.inference_mode():
        torch.testing.assert_close(rebuilt(images), extractor(images), rtol=0, atol=0)


def test_trained_weights_of_another_architecture_are_refused():
    state = build_extractor(
        {**PIXEL, "options": {"widths": [8, 16], "train_crop": 32}}
    ).trained_state()
    with pytest.raises(ValueError, match="pixel: the checkpoint's trained weights do not fit"):
        build_extractor(PIXEL).load_trained(state, param_key="pixel")


def test_a_trained_branch_scores_in_float32_under_autocast():
    extractor = build_extractor(PIXEL).mark_trained()
    images = batch(scene(64, 3))
    with torch.inference_mode():
        plain = extractor(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            under_autocast = extractor(images)
    torch.testing.assert_close(under_autocast, plain, rtol=0, atol=0)


def test_finetune_resnet_has_a_lower_default_learning_rate():
    extractor = build_extractor({**RESNET18, "train_mode": "finetune"})
    assert extractor.trainable and extractor.lr_scale == 0.1
    assert build_extractor({**RESNET18, "train_mode": "finetune", "lr_scale": 0.5}).lr_scale == 0.5
    assert extractor.identity()["train_mode"] == "finetune"
