# Copyright (c) mmtfclip contributors. All rights reserved.
"""No file from elsewhere runs code when it is read (issue 12).

Each kind of payload is planted at each entry point that takes a weight
file or a checkpoint from a user: CLIPViT.pretrained, the mmpretrain
backbone's init_cfg Pretrained, both converters, init_model,
tools/demo/tracklet_search.py, tools/deployment/pytorch2onnx.py and
tools/analysis_tools/extract_features.py / visualize_ranks.py. Every
payload is first shown to work (torch.load / torch.jit.load / pickle run
it and write the marker), then every entry point must refuse the file,
name it, and leave no marker. Genuine CLIP files in every format still
load, giving the weights torch.jit.load would.
"""
import builtins
import importlib.util
import io
import os.path as osp
import pickle
import sys
import warnings
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmtfclip.apis import init_model
from mmtfclip.fileio import UnsafeFileError, load_torchscript_weights
from mmtfclip.models.backbones import CLIPViT
from mmtfclip.models.backbones.clip_weights import load_clip_checkpoint
from mmtfclip.registry import MODELS
from mmtfclip.testing import (TINY_CLIP_FORMATS, make_tiny_clip_state_dict,
                              save_tiny_clip, tiny_clip_arch)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CFG = osp.join(ROOT, 'configs', 'tfclip_demo.py')
SWAP_CFG = osp.join(
    ROOT, 'configs', 'tfclip',
    'tfclip_vit-b16-mmpretrain-clip-openai-pre_1xb16-t8-80e_mars.py')
KINDS = ('reduce', 'reduce_legacy', 'setstate', 'archive_reduce', 'empty',
         'truncated')


class _Reduce:
    """Unpickling this opens (creates) the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (builtins.open, (self.marker, 'w'))


class _SetState(torch.nn.Module):
    """A scripted module whose __setstate__ creates the marker file
    (torch.from_file with shared=True creates the file it maps)."""

    def __init__(self, marker: str):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(2))
        self.marker = marker

    def forward(self, x):
        return x * self.weight

    @torch.jit.export
    def __getstate__(self):
        return (self.weight, self.marker, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, str, bool]):
        self.marker = state[1]
        self.training = state[2]
        touched = torch.from_file(self.marker, True, 1, dtype=torch.uint8)
        self.weight = state[0] + touched.sum() * 0


def _jit_load(path):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return torch.jit.load(path)


def plant(kind: str, folder) -> tuple:
    """Write a payload of ``kind``; returns (file, marker)."""
    marker = str(folder / f'{kind}.marker')
    path = str(folder / f'{kind}.pth')
    weights = {'visual.conv1.weight': torch.ones(2)}
    if kind == 'reduce':
        torch.save({'state_dict': weights, 'x': _Reduce(marker)}, path)
    elif kind == 'reduce_legacy':
        torch.save({
            'state_dict': weights,
            'x': _Reduce(marker)
        },
                   path,
                   _use_new_zipfile_serialization=False)
    elif kind == 'setstate':
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            torch.jit.save(torch.jit.script(_SetState(marker)), path)
    elif kind == 'archive_reduce':
        # A genuine CLIP archive whose data.pkl was replaced by a payload.
        genuine = save_tiny_clip(str(folder / 'genuine.pt'))
        with zipfile.ZipFile(genuine) as src, zipfile.ZipFile(path,
                                                              'w') as dst:
            for info in src.infolist():
                data = src.read(info)
                if info.filename.endswith('/data.pkl'):
                    data = pickle.dumps(_Reduce(marker), protocol=2)
                dst.writestr(info, data)
    elif kind == 'empty':
        open(path, 'wb').close()
    elif kind == 'truncated':
        torch.save({'state_dict': make_tiny_clip_state_dict()}, path)
        with open(path, 'rb') as f:
            data = f.read()
        with open(path, 'wb') as f:
            f.write(data[:len(data) // 2])
    return path, marker


@pytest.mark.parametrize('kind', ['reduce', 'reduce_legacy', 'setstate'])
def test_the_payloads_are_real(tmp_path, kind):
    """Without the project's loaders each payload does write its marker, so
    the tests below could fail."""
    path, marker = plant(kind, tmp_path)
    assert not osp.exists(marker)
    if kind == 'setstate':
        _jit_load(path)
    else:
        torch.load(path, weights_only=False)
    assert osp.exists(marker)


def test_the_archive_payload_is_real(tmp_path):
    path, marker = plant('archive_reduce', tmp_path)
    with zipfile.ZipFile(path) as archive:
        data_pkl = [n for n in archive.namelist() if n.endswith('data.pkl')]
        pickle.loads(archive.read(data_pkl[0]))
    assert osp.exists(marker)


def _tool(*parts):
    path = osp.join(ROOT, 'tools', *parts)
    spec = importlib.util.spec_from_file_location(f'tool_{parts[-1][:-3]}',
                                                  path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_tool(monkeypatch, parts, argv):
    monkeypatch.setattr(sys, 'argv', [parts[-1], *argv])
    _tool(*parts).main()


def _tiny_demo_options():
    return [
        '--cfg-options', 'model.head.num_classes=4',
        'model.backbone.num_cams=2'
    ]


def _clip_vit(path, tmp_path, monkeypatch):
    CLIPViT(arch=tiny_clip_arch(), pretrained=path).init_weights()


def _pretrained_init_cfg(path, tmp_path, monkeypatch):
    cfg = Config.fromfile(SWAP_CFG)
    cfg.model.backbone.encoder.update(
        arch=dict(
            embed_dims=64, num_layers=2, num_heads=2,
            feedforward_channels=256),
        img_size=(64, 32))
    cfg.model.backbone.update(in_channels=64, out_channels=32)
    cfg.model.neck.update(embed_dims=64, num_heads=2, num_frames=4)
    cfg.model.head.update(num_classes=4, in_channels=64, proj_channels=32)
    cfg.model.head.ssp.num_heads = 2
    cfg.model.init_cfg = dict(type='Pretrained', checkpoint=path)
    MODELS.build(cfg.model).init_weights()


def _clip_to_mmpretrain(path, tmp_path, monkeypatch):
    _tool('model_converters',
          'clip_to_mmpretrain.py').main([path, str(tmp_path / 'out.pth')])


def _official_converter(path, tmp_path, monkeypatch):
    _tool('model_converters', 'tfclip_official_to_mmtfclip.py').main(
        [path, str(tmp_path / 'out.pth')])


def _official_converter_memory(path, tmp_path, monkeypatch):
    converter = _tool('model_converters', 'tfclip_official_to_mmtfclip.py')
    converter.load_memory(path)


def _init_model(path, tmp_path, monkeypatch):
    init_model(DEMO_CFG, path, cfg_options={'model.head.num_classes': 4})


def _tracklet_search(path, tmp_path, monkeypatch):
    _run_tool(monkeypatch, ('demo', 'tracklet_search.py'), [
        DEMO_CFG, path, '--query',
        str(tmp_path), '--gallery',
        str(tmp_path), *_tiny_demo_options()
    ])


def _pytorch2onnx(path, tmp_path, monkeypatch):
    _run_tool(monkeypatch, ('deployment', 'pytorch2onnx.py'), [
        DEMO_CFG, path, '--out',
        str(tmp_path / 'out.onnx'), *_tiny_demo_options()
    ])


def _extract_features(path, tmp_path, monkeypatch):
    _run_tool(monkeypatch, ('analysis_tools', 'extract_features.py'), [
        DEMO_CFG, path, '--split', 'query', '--out',
        str(tmp_path / 'out.npz'), *_tiny_demo_options()
    ])


ENTRY_POINTS = dict(
    clip_vit_pretrained=_clip_vit,
    pretrained_init_cfg=_pretrained_init_cfg,
    clip_to_mmpretrain=_clip_to_mmpretrain,
    tfclip_official_to_mmtfclip=_official_converter,
    tfclip_official_to_mmtfclip_memory=_official_converter_memory,
    init_model=_init_model,
    tracklet_search=_tracklet_search,
    pytorch2onnx=_pytorch2onnx,
    extract_features=_extract_features)


@pytest.mark.parametrize('entry', list(ENTRY_POINTS))
def test_no_entry_point_runs_a_planted_file(tmp_path, monkeypatch, entry):
    monkeypatch.chdir(tmp_path)
    for kind in KINDS:
        folder = tmp_path / kind
        folder.mkdir()
        path, marker = plant(kind, folder)
        with pytest.raises(UnsafeFileError) as info:
            ENTRY_POINTS[entry](path, folder, monkeypatch)
        assert path in str(info.value), (kind, str(info.value))
        assert not osp.exists(marker), kind
        assert not osp.exists(folder / 'out.pth'), kind


def test_messages_say_why(tmp_path):
    """What each refusal says, at the CLIP entry point."""
    expected = dict(
        reduce='holds more than tensors.*it names io.open',
        reduce_legacy='holds more than tensors.*io.open',
        setstate='_SetState defines __setstate__, code that '
        'torch.jit.load would run',
        archive_reduce='data.pkl names io.open, which a weight file never '
        'needs',
        empty=r'is empty \(0 bytes\)',
        truncated='is truncated or corrupt')
    for kind, message in expected.items():
        folder = tmp_path / kind
        folder.mkdir()
        path, marker = plant(kind, folder)
        with pytest.raises(UnsafeFileError, match=message):
            load_clip_checkpoint(path)
        assert not osp.exists(marker)


def test_visualize_ranks_refuses_pickled_dump(tmp_path, monkeypatch):
    marker = str(tmp_path / 'dump.marker')
    dump = str(tmp_path / 'dump.npz')
    payload = np.empty(1, dtype=object)
    payload[0] = _Reduce(marker)
    np.savez(dump, distmat=payload)
    with pytest.raises(UnsafeFileError, match='dump.npz'):
        _run_tool(monkeypatch, ('analysis_tools', 'visualize_ranks.py'),
                  [dump, '--out-dir', str(tmp_path / 'vis')])
    assert not osp.exists(marker)


@pytest.mark.parametrize('fmt', TINY_CLIP_FORMATS)
def test_genuine_clip_files_still_load(tmp_path, fmt):
    """Every format, under a name that does not tell it, gives the tiny
    weights; the archive gives exactly what torch.jit.load gives."""
    path = save_tiny_clip(str(tmp_path / 'weights.bin'), fmt=fmt)
    state_dict = load_clip_checkpoint(path)
    assert all(type(v) is torch.Tensor for v in state_dict.values())
    for key, value in make_tiny_clip_state_dict().items():
        assert torch.equal(state_dict[key], value), key
    if fmt == 'openai_jit':
        reference = _jit_load(path).state_dict()
        ours = load_torchscript_weights(path)
        assert list(ours) == list(reference)
        for key, value in reference.items():
            assert ours[key].dtype == value.dtype, key
            assert torch.equal(ours[key], value), key
        assert 'input_resolution' in state_dict
    model = CLIPViT(arch=tiny_clip_arch(), pretrained=path)
    model.init_weights()
    assert torch.equal(model.conv1.weight.detach(),
                       make_tiny_clip_state_dict()['visual.conv1.weight'])


def test_float16_archive_is_read_as_float16(tmp_path):
    path = save_tiny_clip(
        str(tmp_path / 'half.pt'), fmt='openai_jit', dtype=torch.float16)
    ours = load_torchscript_weights(path)
    reference = _jit_load(path).state_dict()
    assert ours['visual.proj'].dtype == torch.float16
    for key, value in reference.items():
        assert torch.equal(ours[key], value), key


def test_non_finite_clip_weights_are_refused(tmp_path):
    for fmt in TINY_CLIP_FORMATS:
        state_dict = make_tiny_clip_state_dict()
        state_dict['visual.transformer.resblocks.1.mlp.c_fc.bias'][3] = float(
            'inf')
        state_dict['visual.ln_post.weight'][0] = float('nan')
        path = save_tiny_clip(
            str(tmp_path / f'{fmt}.pt'), fmt=fmt, state_dict=state_dict)
        with pytest.raises(
                UnsafeFileError,
                match=f'{fmt}.pt holds NaN or infinite values in 2 '
                r'tensor\(s\)') as info:
            CLIPViT(arch=tiny_clip_arch(), pretrained=path).init_weights()
        assert ('visual.transformer.resblocks.1.mlp.c_fc.bias (1 of 256 '
                'values)') in str(info.value)
        assert 'visual.ln_post.weight (1 of 64 values)' in str(info.value)


def test_archive_records_that_lie_are_refused(tmp_path):
    genuine = save_tiny_clip(str(tmp_path / 'genuine.pt'))
    # A tensor record cut short: refused, not read past its end.
    cut = str(tmp_path / 'cut.pt')
    with zipfile.ZipFile(genuine) as src, zipfile.ZipFile(cut, 'w') as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith('/data/0'):
                data = data[:8]
            dst.writestr(info, data)
    with pytest.raises(UnsafeFileError, match='cut.pt.*truncated'):
        load_torchscript_weights(cut)
    # A flipped bit in a record: the zip CRC no longer matches.
    flipped = str(tmp_path / 'flipped.pt')
    raw = bytearray(open(genuine, 'rb').read())
    with zipfile.ZipFile(genuine) as archive:
        info = [
            i for i in archive.infolist() if i.filename.endswith('/data/8')
        ]
        offset = info[0].header_offset + 30 + len(info[0].filename) + len(
            info[0].extra) + 100
    raw[offset] ^= 0x01
    open(flipped, 'wb').write(bytes(raw))
    with pytest.raises(UnsafeFileError, match='flipped.pt'):
        load_torchscript_weights(flipped)


def test_a_pickle_named_like_a_state_dict_is_still_refused(tmp_path):
    """The restricted unpickler refuses any global that is not a tensor
    rebuild or a module class of the archive, whatever it is."""
    marker = str(tmp_path / 'ordered.marker')
    buffer = io.BytesIO()
    pickle.dump(OrderedDict(x=_Reduce(marker)), buffer, protocol=2)
    genuine = save_tiny_clip(str(tmp_path / 'genuine.pt'))
    planted = str(tmp_path / 'planted.pt')
    with zipfile.ZipFile(genuine) as src, zipfile.ZipFile(planted, 'w') as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith('/data.pkl'):
                data = buffer.getvalue()
            dst.writestr(info, data)
    with pytest.raises(UnsafeFileError, match='names io.open'):
        load_torchscript_weights(planted)
    assert not osp.exists(marker)


def test_scripted_open_clip_archive_loads(tmp_path):
    """torch.jit.script of an open_clip CLIP (not traced like OpenAI's):
    the same state dict as torch.jit.load, and CLIPViT takes its tower."""
    from open_clip.model import CLIP
    clip = CLIP(
        embed_dim=32,
        vision_cfg=dict(
            width=64, layers=2, head_width=32, patch_size=16, image_size=224),
        text_cfg=dict(
            width=32, layers=1, heads=2, context_length=77, vocab_size=1000),
        quick_gelu=True).eval()
    path = str(tmp_path / 'scripted.pt')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.jit.save(torch.jit.script(clip), path)
    reference = _jit_load(path).state_dict()
    ours = load_torchscript_weights(path)
    assert list(ours) == list(reference)
    assert all(torch.equal(ours[k], v) for k, v in reference.items())
    model = CLIPViT(arch=tiny_clip_arch(), pretrained=path)
    model.init_weights()
    assert torch.equal(model.proj.detach(), clip.visual.proj.detach())
