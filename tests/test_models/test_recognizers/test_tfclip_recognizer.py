# Copyright (c) mmtfclip contributors. All rights reserved.
"""TFCLIP built from configs/tfclip_mars.py with tiny sizes."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmpretrain.structures import DataSample

from mmtfclip.registry import MODELS
from mmtfclip.testing import tiny_clip_arch

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
T, H, W = 4, 64, 32
EMBED = 64 + 32 + 64


def tiny_cfg() -> Config:
    """configs/tfclip_mars.py with a 2-layer 64-wide CLIP, 4 ids, T=4."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'tfclip_mars.py'))
    cfg.model.backbone.update(
        arch=tiny_clip_arch(), img_size=(H, W), num_cams=3, pretrained=None)
    cfg.model.neck.update(embed_dims=64, num_heads=2, num_frames=T)
    cfg.model.head.update(num_classes=4, in_channels=64, proj_channels=32)
    cfg.model.head.ssp.num_heads = 2
    return cfg


def build(**model_overrides):
    cfg = tiny_cfg()
    cfg.model.update(model_overrides)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.head.set_memory(torch.randn(4, 32))
    return model


def samples(labels, cams):
    out = []
    for label, cam in zip(labels, cams):
        sample = DataSample().set_gt_label(label)
        sample.set_field(torch.tensor(cam), 'camid', field_type='data')
        out.append(sample)
    return out


def clips(*shape):
    return [
        torch.randint(0, 256, shape[1:] + (3, H, W), dtype=torch.uint8)
        for _ in range(shape[0])
    ]


def test_modes_and_shapes():
    model = build()
    assert model.use_camera_ids and model.num_frames == T
    data = dict(
        inputs=clips(4, T), data_samples=samples([0, 0, 2, 2], [0, 1, 2, 0]))
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-3))
    log_vars = model.train_step(data, optim)
    for key in ('loss', 'loss_id', 'loss_triplet', 'loss_i2t', 'loss_frame',
                'acc_i2t', 'acc_id'):
        assert key in log_vars and torch.isfinite(log_vars[key])
    model.eval()
    out = model.test_step(
        dict(inputs=clips(2, T), data_samples=samples([7, 9], [0, 2])))
    assert [s.pred_feature.shape for s in out] == [(EMBED, )] * 2
    dense = model.test_step(
        dict(inputs=clips(1, 3, T), data_samples=samples([7], [1])))
    assert dense[0].pred_feature.shape == (EMBED, )
    x = model.data_preprocessor(dict(inputs=clips(2, T)))['inputs']
    emb = model(x, samples([0, 0], [0, 1]), mode='tensor')
    assert emb.shape == (2, EMBED)
    with pytest.raises(RuntimeError, match='Invalid mode'):
        model(x, None, mode='feat')


def test_each_loss_term_is_logged_and_the_total_is_unchanged():
    model = build()
    data = model.data_preprocessor(
        dict(
            inputs=clips(4, T),
            data_samples=samples([0, 0, 2, 2], [0, 1, 2, 0])))
    losses = model(**data, mode='loss')
    for kind, weight in (('id', 1), ('triplet', 1)):
        terms = [losses[f'{kind}_{b}'] for b in ('cls', 'proj', 'temporal')]
        assert not any(t.requires_grad for t in terms)
        # The sum, term by term in the same order: exactly equal.
        assert torch.equal(losses[f'loss_{kind}'].detach(),
                           0. + terms[0] + terms[1] + terms[2])
    total, log_vars = model.parse_losses(losses)
    expected = sum(v for k, v in losses.items() if k.startswith('loss_'))
    assert torch.equal(total, expected)
    assert 'id_proj' in log_vars and 'triplet_temporal' in log_vars


def test_embed_tracklets_memory_feature():
    model = build(max_test_clips=2).eval()
    x = model.data_preprocessor(dict(inputs=clips(1, 3, T)))['inputs'][0]
    with torch.no_grad():
        memory = model.embed_tracklets(x, [2, 1], feature='memory')
        per_clip = model.extract_clip_feat(x)
    torch.testing.assert_close(memory[0], per_clip[:2].mean(0))
    torch.testing.assert_close(memory[1], per_clip[2])
    with pytest.raises(ValueError, match='takes no cameras'):
        model.embed_tracklets(x, [3], torch.tensor([0]), feature='memory')
    with pytest.raises(ValueError, match="'embedding' or 'memory'"):
        model.embed_tracklets(x, [3], feature='tokens')


def test_dense_clips_are_averaged_with_the_tracklet_camera():
    model = build(max_test_clips=2).eval()
    x = model.data_preprocessor(dict(inputs=clips(1, 3, T)))['inputs']
    with torch.no_grad():
        dense = model(x, samples([0], [2]), mode='tensor')
        per_clip = model(x[0], samples([0] * 3, [2] * 3), mode='tensor')
    torch.testing.assert_close(dense[0], per_clip.mean(0))


def test_camera_of_each_frame():
    """SIE: every frame of a sequence (and every dense clip) gets its
    sequence's camera."""
    model = build()
    seen = []
    forward = model.backbone.forward

    def record(x, cam_ids=None):
        seen.append(None if cam_ids is None else cam_ids.tolist())
        return forward(x, cam_ids)

    model.backbone.forward = record
    model.loss(
        model.data_preprocessor(dict(inputs=clips(2, T)))['inputs'],
        samples([0, 1], [2, 0]))
    assert seen[-1] == [2] * T + [0] * T
    model.eval()
    model(
        model.data_preprocessor(dict(inputs=clips(2, 2, T)))['inputs'],
        samples([0, 1], [1, 2]),
        mode='tensor')
    assert seen[-1] == [1] * 2 * T + [2] * 2 * T
    # The memory feature never uses the cameras.
    model.extract_clip_feat(
        model.data_preprocessor(dict(inputs=clips(2, T)))['inputs'])
    assert seen[-1] is None


def test_camera_embedding_changes_the_embedding_only_with_sie():
    with_sie = build().eval()
    x = with_sie.data_preprocessor(dict(inputs=clips(1, T)))['inputs']
    with torch.no_grad():
        a = with_sie(x, samples([0], [0]), mode='tensor')
        b = with_sie(x, samples([0], [1]), mode='tensor')
    assert not torch.allclose(a, b)
    without = build(use_camera_ids=False).eval()
    with torch.no_grad():
        torch.testing.assert_close(
            without(x, samples([0], [0]), mode='tensor'),
            without(x, samples([0], [1]), mode='tensor'))


def test_memory_feature_is_projected_class_token_mean():
    model = build().eval()
    x = model.data_preprocessor(dict(inputs=clips(2, T)))['inputs']
    with torch.no_grad():
        feat = model.extract_clip_feat(x)
        _, proj = model.backbone(x.flatten(0, 1))
    torch.testing.assert_close(feat, proj[:, 0].view(2, T, -1).mean(1))


def test_temporal_branch_does_not_train_the_encoder():
    model = build()
    x = model.data_preprocessor(dict(inputs=clips(4, T)))['inputs']
    losses = model.loss(x, samples([0, 0, 1, 1], [0, 0, 1, 1]))
    losses['loss_frame'].backward(retain_graph=True)
    assert all(p.grad is None for p in model.backbone.parameters())
    assert model.neck.layers[0].attn.in_proj_weight.grad is not None
    losses['loss_i2t'].backward()
    assert model.backbone.conv1.weight.grad is not None


def test_config_errors():
    with pytest.raises(ValueError, match='use_camera_ids=True'):
        cfg = tiny_cfg()
        cfg.model.backbone.num_cams = 0
        cfg.model.use_camera_ids = True
        MODELS.build(cfg.model)
    with pytest.raises(ValueError, match='in_channels=32 vs backbone'):
        build(head=dict(in_channels=32))
    with pytest.raises(ValueError, match='no neck'):
        cfg = tiny_cfg()
        cfg.model.neck = None
        MODELS.build(cfg.model)
    # A backbone that gives tokens only is refused when the model is built.
    cfg = tiny_cfg()
    cfg.model.backbone = dict(
        type='mmpretrain.VisionTransformer',
        arch=dict(
            embed_dims=64, num_layers=1, num_heads=2, feedforward_channels=64),
        img_size=(H, W),
        out_type='raw')
    with pytest.raises(TypeError, match="type='ProjectedBackbone'"):
        MODELS.build(cfg.model)
    model = build()
    with pytest.raises(KeyError, match='camid'):
        model.loss(
            torch.zeros(2, T, 3, H, W),
            [DataSample().set_gt_label(0),
             DataSample().set_gt_label(1)])
    with pytest.raises(ValueError, match='one clip per sample'):
        model.loss(torch.zeros(2, 2, T, 3, H, W), samples([0, 1], [0, 0]))


@pytest.mark.parametrize('sie,max_test_clips', [(True, None), (True, 2),
                                                (False, 2), (False, 64)])
def test_batch_of_tracklets_with_different_clip_counts(sie, max_test_clips):
    """Tracklets of 3, 1 and 2 dense clips in one batch: the embeddings of
    one tracklet at a time, with chunks smaller than a tracklet and larger
    than the batch."""
    model = build(use_camera_ids=sie, max_test_clips=max_test_clips).eval()
    torch.manual_seed(1)
    dense = [clips(1, n, T)[0] for n in (3, 1, 2)]
    labels, cams = [5, 6, 7], [2, 0, 1]
    one_by_one = []
    for x, label, cam in zip(dense, labels, cams):
        out = model.test_step(
            dict(inputs=[x], data_samples=samples([label], [cam])))
        one_by_one.append(out[0].pred_feature)
    one_by_one = torch.stack(one_by_one)
    batch = model.data_preprocessor(
        dict(inputs=dense, data_samples=samples(labels, cams)))
    assert batch['inputs'].shape == (6, T, 3, H, W)
    assert [s.num_clips for s in batch['data_samples']] == [3, 1, 2]
    with torch.no_grad():
        predicted = model(**batch, mode='predict')
        tensor = model(**batch, mode='tensor')
    batched = torch.stack([s.pred_feature for s in predicted])
    torch.testing.assert_close(batched, one_by_one, rtol=0, atol=1e-6)
    torch.testing.assert_close(tensor, one_by_one, rtol=0, atol=1e-6)
    # The cameras matter with SIE only, so the check above sees them.
    swapped = model.test_step(
        dict(inputs=dense, data_samples=samples(labels, [1, 2, 0])))
    moved = torch.stack([s.pred_feature for s in swapped])
    assert torch.allclose(moved, one_by_one, atol=1e-6) != sie


def test_clip_counts_must_match_the_inputs():
    model = build().eval()
    x = model.data_preprocessor(dict(inputs=clips(3, T)))['inputs']
    uneven = samples([0, 1], [0, 1])
    uneven[0].set_metainfo(dict(num_clips=1))
    with pytest.raises(KeyError, match='some do not'):
        model(x, uneven, mode='tensor')
    uneven[1].set_metainfo(dict(num_clips=1))
    with pytest.raises(ValueError, match=r'\[1, 1\] clips per tracklet'):
        model(x, uneven, mode='tensor')
    with pytest.raises(ValueError, match='hold 3 clips'):
        model(x, samples([0, 1], [0, 1]), mode='tensor')
    dense = model.data_preprocessor(dict(inputs=clips(2, 2, T)))['inputs']
    with pytest.raises(ValueError, match='3 data samples for 2'):
        build(use_camera_ids=False).eval()(
            dense, samples([0, 1, 2], [0, 1, 2]), mode='tensor')
