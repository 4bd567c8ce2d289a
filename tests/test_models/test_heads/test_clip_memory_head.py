# Copyright (c) mmtfclip contributors. All rights reserved.
"""CLIP-Memory head: SSP, memory logits and losses against the equations."""
import math

import pytest
import torch
import torch.nn as nn

from mmtfclip.models.heads import CLIPMemoryHead
from mmtfclip.models.utils import MultiheadAttention, SequenceSpecificPrompt
from mmtfclip.registry import MODELS

C, D, K, T = 16, 8, 5, 3  # class/temporal width, projection width, ids, T


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


def attention(q_in, kv_in, attn: MultiheadAttention):
    c, h = attn.embed_dims, attn.num_heads
    w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
    q, k, v = q_in @ w_q.T, kv_in @ w_k.T, kv_in @ w_v.T
    d = c // h
    out = []
    for i in range(h):
        s = slice(i * d, (i + 1) * d)
        out.append(
            torch.softmax(q[:, s] @ k[:, s].T * d**-0.5, dim=-1) @ v[:, s])
    return torch.cat(out, 1) @ attn.out_proj.weight.T + attn.out_proj.bias


def reference_prompt(ssp, memory, visual):
    """SSP for one sequence: memory [K, D], visual tokens [M, D]."""
    x = ssp.memory_proj[1](ssp.memory_proj[0](memory))
    v = ssp.visual_proj[2](ssp.visual_proj[1](ssp.visual_proj[0](visual)))
    for layer in ssp.layers:
        y = layer.norm1(x)
        x = x + attention(y, y, layer.self_attn)
        x = x + attention(layer.norm2(x), v, layer.cross_attn)
        x = x + layer.mlp.fc2(quick_gelu(layer.mlp.fc1(layer.norm3(x))))
    return ssp.out_proj[1](ssp.out_proj[0](x))


def smooth_ce(logits, labels, eps=0.1):
    k = logits.shape[1]
    q = torch.full_like(logits, eps / k)
    q[torch.arange(len(labels)), labels] += 1 - eps
    return -(q * torch.log_softmax(logits, 1)).sum(1).mean()


def batch_norm(x, bn):
    mean, var = x.mean(0), x.var(0, unbiased=False)
    return (x - mean) / torch.sqrt(var + bn.eps) * bn.weight + bn.bias


def triplet(feats, labels, margin=0.3):
    dist = torch.cdist(feats, feats)
    same = labels[:, None] == labels[None]
    ap = torch.where(same, dist, -1.).amax(1)
    an = torch.where(same, math.inf, dist).amin(1)
    return torch.relu(ap - an + margin).mean()


def _head(**kwargs) -> CLIPMemoryHead:
    cfg = dict(
        type='CLIPMemoryHead',
        num_classes=K,
        in_channels=C,
        proj_channels=D,
        ssp=dict(type='SequenceSpecificPrompt', num_layers=2, num_heads=2))
    cfg.update(kwargs)
    head = MODELS.build(cfg)
    gen = torch.Generator().manual_seed(1)
    for m in head.modules():
        if isinstance(m, nn.LayerNorm):
            m.weight.data = 1 + 0.2 * torch.randn(
                m.weight.shape, generator=gen)
            m.bias.data = 0.2 * torch.randn(m.bias.shape, generator=gen)
    if head.with_memory:
        head.set_memory(torch.randn(K, D, generator=gen))
    return head


def _feats(batch=4, tokens=6):
    gen = torch.Generator().manual_seed(2)
    return dict(
        cls=torch.randn(batch, C, generator=gen),
        proj=torch.randn(batch, D, generator=gen),
        proj_tokens=torch.randn(batch, tokens, D, generator=gen),
        frame=torch.randn(batch, T, C, generator=gen),
        temporal=torch.randn(batch, C, generator=gen))


def test_ssp_and_memory_logits_match_equations():
    head = _head().eval()
    feats = _feats()
    logits = head.memory_logits(feats['proj'], feats['proj_tokens'])
    assert logits.shape == (4, K)
    for b in range(4):
        memory = head.clip_memory + reference_prompt(
            head.ssp, head.clip_memory, feats['proj_tokens'][b])
        # No temperature: a plain dot product with the updated memory.
        torch.testing.assert_close(logits[b], memory @ feats['proj'][b])


def test_ssp_shared_memory_equals_expanded_memory():
    """Feeding the memory once equals feeding a copy per sequence."""
    torch.manual_seed(0)
    ssp = SequenceSpecificPrompt(
        embed_dims=D, num_layers=2, num_heads=2).eval()
    memory, visual = torch.randn(K, D), torch.randn(3, 4, D)
    torch.testing.assert_close(
        ssp(memory, visual), ssp(memory.expand(3, K, D), visual))
    # In training the dropout masks differ between sequences.
    ssp.train()
    prompt = ssp(memory, visual[:1].expand(3, 4, D))
    assert not torch.allclose(prompt[0], prompt[1])


def test_memory_logits_without_ssp():
    head = _head(ssp=None)
    feats = _feats()
    torch.testing.assert_close(
        head.memory_logits(feats['proj'], feats['proj_tokens']),
        feats['proj'] @ head.clip_memory.T)


def test_losses_with_the_authors_weights():
    head = _head()
    head.train()
    for m in head.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    feats = _feats()
    labels = torch.tensor([0, 0, 3, 3])
    losses = head.loss(feats, labels)
    assert set(losses) == {
        'loss_id', 'loss_triplet', 'loss_i2t', 'loss_frame', 'acc_id',
        'acc_i2t', 'id_cls', 'id_proj', 'id_temporal', 'triplet_cls',
        'triplet_proj', 'triplet_temporal'
    }

    def score(name, bn, fc):
        return batch_norm(feats[name], bn) @ fc.weight.T

    id_terms = [
        smooth_ce(score('cls', head.cls_bn, head.cls_classifier), labels),
        smooth_ce(score('proj', head.proj_bn, head.proj_classifier), labels),
        smooth_ce(
            score('temporal', head.temporal_bn, head.temporal_classifier),
            labels)
    ]
    expected = dict(
        loss_id=0.25 * sum(id_terms),
        loss_triplet=sum(
            triplet(feats[n], labels) for n in ('cls', 'proj', 'temporal')))
    with torch.no_grad():
        logits = torch.stack([(head.clip_memory + reference_prompt(
            head.ssp, head.clip_memory, feats['proj_tokens'][b]))
                              @ feats['proj'][b] for b in range(4)])
    expected['loss_i2t'] = smooth_ce(logits, labels)
    # The frame features share the temporal classifier; the loss is / T.
    frame_scores = batch_norm(feats['frame'].flatten(
        0, 1), head.frame_bn) @ head.temporal_classifier.weight.T
    expected['loss_frame'] = smooth_ce(frame_scores,
                                       labels.repeat_interleave(T)) / T
    for key, value in expected.items():
        torch.testing.assert_close(losses[key], value, msg=key)
    # Each branch's terms, logged next to their sums.
    for name, term in zip(('cls', 'proj', 'temporal'), id_terms):
        torch.testing.assert_close(losses[f'id_{name}'], 0.25 * term)
        torch.testing.assert_close(losses[f'triplet_{name}'],
                                   triplet(feats[name], labels))
    acc = (logits.argmax(1) == labels).float().mean() * 100
    torch.testing.assert_close(losses['acc_i2t'], acc)
    # The total the runner optimises: the sum of the four terms.
    total = sum(v for k, v in losses.items() if k.startswith('loss'))
    torch.testing.assert_close(total, sum(expected.values()))


def test_untied_frame_classifier():
    tied, untied = _head(), _head(share_frame_classifier=False)
    assert not hasattr(tied, 'frame_classifier')
    assert tied.frame_classifier_layer is tied.temporal_classifier
    assert untied.frame_classifier_layer is untied.frame_classifier
    feats, labels = _feats(), torch.tensor([0, 0, 1, 1])
    untied.loss(feats, labels)['loss_frame'].backward()
    assert untied.frame_classifier.weight.grad is not None
    assert untied.temporal_classifier.weight.grad is None


def test_bnneck_shift_is_frozen_and_classifiers_biasless():
    head = _head()
    for bn in (head.cls_bn, head.proj_bn, head.temporal_bn, head.frame_bn):
        assert not bn.bias.requires_grad and bn.weight.requires_grad
    for fc in (head.cls_classifier, head.proj_classifier,
               head.temporal_classifier):
        assert fc.bias is None and fc.weight.std() < 0.01
    assert 'clip_memory' in head.state_dict()
    assert 'clip_memory' not in dict(head.named_parameters())


@pytest.mark.parametrize('parts,after_bn,dims',
                         [(('cls', 'proj', 'temporal'), False, C + D + C),
                          (('cls', 'proj'), True, C + D)])
def test_embedding_parts(parts, after_bn, dims):
    head = _head(embedding_parts=parts, embedding_after_bn=after_bn).eval()
    feats = _feats()
    emb = head.predict(feats)
    assert emb.shape == (4, dims) and head.embedding_dims == dims
    first = head.cls_bn(feats['cls']) if after_bn else feats['cls']
    torch.testing.assert_close(emb[:, :C], first)
    torch.testing.assert_close(
        emb[:, C:C + D],
        head.proj_bn(feats['proj']) if after_bn else feats['proj'])


def test_no_memory_and_no_temporal_variants():
    head = _head(loss_i2t=None, ssp=None)
    assert not head.with_memory and 'clip_memory' not in head.state_dict()
    losses = head.loss(_feats(), torch.tensor([0, 0, 1, 1]))
    assert 'loss_i2t' not in losses
    plain = _head(with_temporal=False, embedding_parts=('cls', 'proj'))
    assert not hasattr(plain, 'temporal_bn') and not hasattr(plain, 'frame_bn')
    feats = _feats()
    del feats['frame'], feats['temporal']
    losses = plain.loss(feats, torch.tensor([0, 0, 1, 1]))
    assert 'loss_frame' not in losses and 'loss_i2t' in losses


def test_head_errors():
    with pytest.raises(ValueError, match='num_classes'):
        _head(num_classes=None)
    with pytest.raises(ValueError, match='embedding_parts'):
        _head(embedding_parts=('cls', 'text'))
    with pytest.raises(ValueError, match="includes 'temporal'"):
        _head(with_temporal=False)
    with pytest.raises(ValueError, match='ssp=None too'):
        _head(loss_i2t=None)
    head = _head()
    with pytest.raises(ValueError, match=r'\(5, 8\)'):
        head.set_memory(torch.zeros(4, 8))
    head.set_memory(torch.zeros(K, D))
    with pytest.raises(RuntimeError, match='CLIPMemoryHook'):
        head.loss(_feats(), torch.tensor([0, 0, 1, 1]))
