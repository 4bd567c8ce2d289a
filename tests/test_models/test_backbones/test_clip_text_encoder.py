# Copyright (c) mmtfclip contributors. All rights reserved.
import open_clip
import pytest
import torch

from mmtfclip.models.backbones import CLIPTextEncoder
from mmtfclip.testing import make_tiny_clip_state_dict, save_tiny_clip
from mmtfclip.testing.clip import _OpenAIStyleCLIP

TEXT = dict(text_width=32, text_layers=2, text_heads=2, vocab_size=49408)
ARCH = dict(
    width=32,
    layers=2,
    heads=2,
    context_length=77,
    vocab_size=49408,
    output_dim=32)


@pytest.mark.parametrize('fmt', ['openai_state_dict', 'open_clip'])
def test_text_features_equal_clip_encode_text(tmp_path, fmt):
    state_dict = make_tiny_clip_state_dict(**TEXT, seed=1)
    path = save_tiny_clip(
        str(tmp_path / 'clip.pt'), fmt=fmt, state_dict=state_dict, **TEXT)
    encoder = CLIPTextEncoder(arch=ARCH, pretrained=path)
    encoder.init_weights()
    reference = _OpenAIStyleCLIP(state_dict, heads=2, text_heads=2)
    reference.load_state_dict(state_dict, strict=False)
    tokens = open_clip.tokenize(['A photo of a person.', 'a dog'])
    with torch.no_grad():
        _, expected = reference(torch.zeros(2, 3, 224, 224), tokens)
        ours = encoder(encoder.token_embedding(tokens), tokens)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    assert not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.training


def test_refuses_weights_that_do_not_fit(tmp_path):
    path = save_tiny_clip(
        str(tmp_path / 'clip.pt'), fmt='openai_state_dict', **TEXT)
    encoder = CLIPTextEncoder(arch=dict(ARCH, width=64), pretrained=path)
    with pytest.raises(RuntimeError, match='shape mismatches'):
        encoder.init_weights()
    with pytest.raises(FileNotFoundError, match='No CLIP weights'):
        CLIPTextEncoder(
            arch=ARCH, pretrained=str(tmp_path / 'missing.pt')).init_weights()


def test_open_clip_arch_names():
    encoder = CLIPTextEncoder(arch='ViT-B-16')
    assert (encoder.width, encoder.out_dims,
            encoder.context_length) == (512, 512, 77)
    assert encoder.token_embedding.num_embeddings == 49408
