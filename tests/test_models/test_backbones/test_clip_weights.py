# Copyright (c) mmtfclip contributors. All rights reserved.
import os.path as osp
from collections import OrderedDict

import numpy as np
import pytest
import torch

from mmtfclip.models.backbones import CLIPViT
from mmtfclip.models.backbones.clip_weights import (
    check_openai_sha256, find_cached_open_clip_weights, is_torchscript_archive,
    load_clip_checkpoint, load_clip_visual_weights, openai_clip_files,
    resize_pos_embed)
from mmtfclip.testing import (TINY_CLIP_FORMATS, make_tiny_clip_state_dict,
                              save_tiny_clip, tiny_clip_arch)

TINY = tiny_clip_arch()
VIT_B16_SHA = \
    '5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f'


def _bilinear_reference(grid: np.ndarray, out_h: int,
                        out_w: int) -> np.ndarray:
    """Bilinear resize with half-pixel centres, edge-clamped (the
    ``align_corners=False`` convention), one output pixel at a time."""
    in_h, in_w, _ = grid.shape
    out = np.zeros((out_h, out_w, grid.shape[2]), dtype=np.float64)
    for i in range(out_h):
        y = max((i + 0.5) * in_h / out_h - 0.5, 0.0)
        y0 = min(int(np.floor(y)), in_h - 1)
        y1 = min(y0 + 1, in_h - 1)
        wy = y - y0
        for j in range(out_w):
            x = max((j + 0.5) * in_w / out_w - 0.5, 0.0)
            x0 = min(int(np.floor(x)), in_w - 1)
            x1 = min(x0 + 1, in_w - 1)
            wx = x - x0
            out[i, j] = ((1 - wy) * (1 - wx) * grid[y0, x0] +
                         (1 - wy) * wx * grid[y0, x1] + wy *
                         (1 - wx) * grid[y1, x0] + wy * wx * grid[y1, x1])
    return out


def test_resize_pos_embed_bilinear():
    pos = torch.randn(1 + 14 * 14, 8)
    resized = resize_pos_embed(pos, (14, 14), (16, 8))
    assert resized.shape == (1 + 16 * 8, 8)
    torch.testing.assert_close(resized[0], pos[0])
    expected = _bilinear_reference(pos[1:].reshape(14, 14, 8).double().numpy(),
                                   16, 8)
    np.testing.assert_allclose(
        resized[1:].reshape(16, 8, 8).numpy(), expected, rtol=0, atol=1e-5)
    # Same grid: untouched. Another mode is honoured.
    assert resize_pos_embed(pos, (14, 14), (14, 14)) is pos
    nearest = resize_pos_embed(pos, (14, 14), (28, 28), mode='nearest')
    torch.testing.assert_close(nearest[1:].reshape(28, 28, 8)[::2, ::2],
                               pos[1:].reshape(14, 14, 8))
    # float16 in, float16 out, equal to interpolating float16 directly as
    # the authors do.
    half = pos.half()
    direct = torch.nn.functional.interpolate(
        half[1:].reshape(1, 14, 14, 8).permute(0, 3, 1, 2),
        size=(16, 8),
        mode='bilinear').permute(0, 2, 3, 1).reshape(-1, 8)
    resized_half = resize_pos_embed(half, (14, 14), (16, 8))
    assert resized_half.dtype == torch.float16
    assert torch.equal(resized_half[1:], direct)
    with pytest.raises(ValueError, match='1 \\+ 14\\*14'):
        resize_pos_embed(pos[:-1], (14, 14), (16, 8))


def test_backbone_resizes_pretrained_pos_embed(tmp_path):
    path = save_tiny_clip(str(tmp_path / 'tiny.pt'), fmt='openai_jit')
    model = CLIPViT(arch=TINY, img_size=(256, 128), interpolate_mode='bicubic')
    model.load_clip_weights(path)
    pos = make_tiny_clip_state_dict()['visual.positional_embedding']
    grid = pos[1:].reshape(1, 14, 14, -1).permute(0, 3, 1, 2)
    expected = torch.nn.functional.interpolate(
        grid, size=(16, 8), mode='bicubic').permute(0, 2, 3,
                                                    1).reshape(16 * 8, -1)
    torch.testing.assert_close(model.positional_embedding[0].detach(), pos[0])
    torch.testing.assert_close(model.positional_embedding[1:].detach(),
                               expected)


def test_formats_give_identical_tokens(tmp_path):
    x = torch.randn(2, 3, 256, 128)
    cam_ids = torch.tensor([1, 0])
    outputs = []
    for fmt in TINY_CLIP_FORMATS:
        path = save_tiny_clip(str(tmp_path / f'{fmt}.pt'), fmt=fmt)
        torch.manual_seed(0)  # the same camera embedding each time
        model = CLIPViT(arch=TINY, num_cams=2, pretrained=path).eval()
        model.init_weights()
        with torch.no_grad():
            outputs.append(model(x, cam_ids))
    for tokens, proj in outputs[1:]:
        assert torch.equal(tokens, outputs[0][0])
        assert torch.equal(proj, outputs[0][1])
    # And they are the tiny weights, not the random initialisation.
    torch.manual_seed(0)
    random_model = CLIPViT(arch=TINY, num_cams=2).eval()
    with torch.no_grad():
        assert not torch.allclose(random_model(x, cam_ids)[0], outputs[0][0])


@pytest.mark.filterwarnings('ignore:`torch.jit.load` is deprecated')
def test_torchscript_archive_becomes_a_plain_state_dict(tmp_path):
    jit_path = save_tiny_clip(str(tmp_path / 'jit.pt'), fmt='openai_jit')
    sd_path = save_tiny_clip(str(tmp_path / 'sd.pt'), fmt='openai_state_dict')
    assert is_torchscript_archive(jit_path)
    assert not is_torchscript_archive(sd_path)
    raw = torch.jit.load(jit_path).state_dict()
    for key in ('visual.conv1.weight', 'positional_embedding',
                'token_embedding.weight', 'ln_final.weight', 'text_projection',
                'logit_scale', 'input_resolution', 'context_length',
                'vocab_size'):
        assert key in raw
    assert int(raw['input_resolution']) == 224

    state_dict = load_clip_checkpoint(jit_path)
    assert type(state_dict) is OrderedDict
    assert all(type(v) is torch.Tensor for v in state_dict.values())
    reference = make_tiny_clip_state_dict()
    for key, value in reference.items():
        assert torch.equal(state_dict[key], value), key

    model = CLIPViT(arch=TINY, pretrained=jit_path)
    model.init_weights()
    assert not any(
        isinstance(m, torch.jit.ScriptModule) for m in model.modules())
    assert all(type(p) is torch.nn.Parameter for p in model.parameters())


def test_float16_archive_loads_into_float32(tmp_path):
    path = save_tiny_clip(
        str(tmp_path / 'half.pt'), fmt='openai_jit', dtype=torch.float16)
    model = CLIPViT(arch=TINY, img_size=(224, 224), pretrained=path)
    model.init_weights()
    assert model.conv1.weight.dtype == torch.float32
    expected = make_tiny_clip_state_dict()['visual.conv1.weight']
    assert torch.equal(model.conv1.weight.detach(), expected.half().float())


def test_wrong_sha256_raises(tmp_path):
    assert openai_clip_files()['ViT-B-16.pt'][1] == VIT_B16_SHA
    path = save_tiny_clip(str(tmp_path / 'ViT-B-16.pt'), fmt='openai_jit')
    with pytest.raises(RuntimeError, match=VIT_B16_SHA):
        check_openai_sha256(path)
    model = CLIPViT(arch=TINY, pretrained=path)
    with pytest.raises(RuntimeError, match='SHA-256'):
        model.init_weights()
    # Other names are not OpenAI's files: nothing to check.
    assert not check_openai_sha256(
        save_tiny_clip(str(tmp_path / 'tiny.pt'), fmt='openai_jit'))


def test_missing_file_says_what_to_do(tmp_path):
    missing = str(tmp_path / 'checkpoints' / 'ViT-B-16.pt')
    model = CLIPViT(pretrained=missing)
    with pytest.raises(FileNotFoundError) as info:
        model.init_weights()
    message = str(info.value)
    assert 'ViT-B-16.pt' in message
    assert f'openaipublic.azureedge.net/clip/models/{VIT_B16_SHA}' in message
    assert osp.abspath(missing) in message
    assert 'model.backbone.pretrained' in message


def test_open_clip_tag_from_local_cache_only(tmp_path):
    cache = tmp_path / 'cache'
    cache.mkdir()
    # Nothing cached (and the hub is forced offline): not found, no error.
    assert find_cached_open_clip_weights(
        'ViT-B-16', 'openai', cache_dir=str(cache)) is None
    with pytest.raises(FileNotFoundError, match='model.backbone.pretrained'):
        load_clip_visual_weights(
            'openai', model_name='ViT-B-16', cache_dir=str(cache))
    with pytest.raises(ValueError, match='no pretrained tag "nope"'):
        find_cached_open_clip_weights('ViT-B-16', 'nope')
    with pytest.raises(FileNotFoundError, match='a tag needs the backbone'):
        CLIPViT(arch=TINY, pretrained='openai').init_weights()

    # A Hugging Face hub cache entry, as open_clip would have downloaded it.
    repo = cache / 'models--timm--vit_base_patch16_clip_224.openai'
    commit = 'a' * 40
    snapshot = repo / 'snapshots' / commit
    snapshot.mkdir(parents=True)
    (repo / 'refs').mkdir()
    (repo / 'refs' / 'main').write_text(commit)
    save_tiny_clip(
        str(snapshot / 'open_clip_pytorch_model.bin'), fmt='open_clip')
    found = find_cached_open_clip_weights(
        'ViT-B-16', 'openai', cache_dir=str(cache))
    assert found == str(snapshot / 'open_clip_pytorch_model.bin')
    visual, source = load_clip_visual_weights(
        'openai', model_name='ViT-B-16', cache_dir=str(cache))
    assert source == found
    assert torch.equal(visual['proj'],
                       make_tiny_clip_state_dict()['visual.proj'])

    # open_clip's URL cache: a file under OpenAI's name must match the hash.
    url_cache = tmp_path / 'clip'
    save_tiny_clip(str(url_cache / 'ViT-B-32.pt'), fmt='openai_jit')
    with pytest.raises(RuntimeError, match='SHA-256'):
        find_cached_open_clip_weights(
            'ViT-B-32', 'openai', cache_dir=str(url_cache))


def test_weights_that_do_not_fit(tmp_path):
    path = save_tiny_clip(
        str(tmp_path / 'wide.pt'), fmt='openai_state_dict', width=32)
    model = CLIPViT(arch=TINY)
    with pytest.raises(RuntimeError, match='shape mismatches') as info:
        model.load_clip_weights(path)
    assert 'conv1.weight' in str(info.value)
    deep = save_tiny_clip(
        str(tmp_path / 'deep.pt'), fmt='openai_state_dict', layers=3)
    with pytest.raises(
            RuntimeError,
            match="unexpected keys: \\['transformer.resblocks.2"):
        model.load_clip_weights(deep)
    not_clip = tmp_path / 'not_clip.pt'
    torch.save({'backbone.weight': torch.zeros(1)}, not_clip)
    with pytest.raises(KeyError, match='no CLIP image tower'):
        model.load_clip_weights(str(not_clip))
