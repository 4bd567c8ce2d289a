# Copyright (c) mmtfclip contributors. All rights reserved.
"""Embed tracklets with an exported ONNX model, without PyTorch.

This module needs numpy, OpenCV (``cv2``) and onnxruntime only: it imports
nothing from PyTorch or from the rest of mmtfclip, so a deployment may copy
this one file next to the ``.onnx`` written by
``tools/deployment/pytorch2onnx.py`` (see docs/deployment.md). It does what
the config's test pipeline and the model's test mode do around the graph:

- read the frames (OpenCV, RGB), resize them to the model's input
  (bilinear, as ``TrackletResize``),
- split every frame into consecutive clips of T, the last clip padded by
  cycling its own frames (``SampleTrackletFrames(mode='dense')``),
- run the clips (the graph normalises the uint8 frames itself), give each
  clip its tracklet's camera (SIE), and average a tracklet's clip
  embeddings,
- optionally L2-normalise the result, as ``ReIDMetric`` does before
  comparing (``feat_norm=True``).
"""
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

#: Image files of a tracklet folder (as ``mmtfclip.datasets``'
#: ``IMG_EXTENSIONS``).
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
#: The ONNX metadata the exporter writes, with its prefix.
META_PREFIX = 'mmtfclip.'
# OpenCV >= 4.10 decodes straight to RGB, as LoadTrackletFrames does.
_CV2_RGB_FLAG = getattr(cv2, 'IMREAD_COLOR_RGB', None)
_INTERPOLATIONS = dict(
    nearest=cv2.INTER_NEAREST,
    bilinear=cv2.INTER_LINEAR,
    bicubic=cv2.INTER_CUBIC,
    area=cv2.INTER_AREA,
    lanczos=cv2.INTER_LANCZOS4)

TrackletInput = Union[str, os.PathLike, Sequence, np.ndarray]


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r'(\d+)', name)]


def dense_clip_indices(num_frames: int, clip_len: int) -> np.ndarray:
    """Every frame in consecutive clips of ``clip_len``, the last clip
    padded by cycling its own frames (``24, 25, 24, 25``).

    Args:
        num_frames (int): Frames of the tracklet (>= 1).
        clip_len (int): T.

    Returns:
        np.ndarray: ``[num_clips, clip_len]`` frame indices.
    """
    num_clips = -(-num_frames // clip_len)
    inds = np.arange(num_clips * clip_len)
    last = (num_clips - 1) * clip_len
    inds[last:] = last + np.arange(clip_len) % (num_frames - last)
    return inds.reshape(num_clips, clip_len)


class ONNXTrackletRunner:
    """Tracklet embeddings from an ONNX file, with numpy and onnxruntime.

    Args:
        onnx_file (str): The graph written by
            ``tools/deployment/pytorch2onnx.py``.
        providers (Sequence[str], optional): onnxruntime execution
            providers. Defaults to ``['CPUExecutionProvider']``.
        max_clips (int): At most this many clips per ``session.run``.
            Defaults to 32.

    The clip length, input size and resize rule come from the metadata the
    exporter stores in the file (``mmtfclip.*`` keys); a file without them
    is read from its input shape (T, H, W fixed at export) with the
    pipeline of the shipped configs (dense clips, bilinear resize).
    """

    def __init__(self,
                 onnx_file: str,
                 providers: Optional[Sequence[str]] = None,
                 max_clips: int = 32) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ImportError(
                'ONNXTrackletRunner needs onnxruntime: `pip install '
                'onnxruntime` (or onnxruntime-gpu).') from err
        if not osp.isfile(onnx_file):
            raise FileNotFoundError(f'ONNX file {onnx_file} does not exist.')
        if max_clips < 1:
            raise ValueError(f'max_clips must be >= 1, got {max_clips}.')
        self.onnx_file = onnx_file
        self.max_clips = max_clips
        self.session = ort.InferenceSession(
            onnx_file, providers=list(providers or ['CPUExecutionProvider']))
        inputs = {i.name: i for i in self.session.get_inputs()}
        if 'frames' not in inputs:
            raise ValueError(f'{onnx_file} has no `frames` input (inputs: '
                             f'{sorted(inputs)}); export it with '
                             'tools/deployment/pytorch2onnx.py.')
        self.use_camera_ids = 'cam_ids' in inputs
        shape = inputs['frames'].shape  # [N, T, 3, H, W]
        meta = {
            k[len(META_PREFIX):]: v
            for k, v in
            self.session.get_modelmeta().custom_metadata_map.items()
            if k.startswith(META_PREFIX)
        }
        self.meta = meta
        if meta.get('unsupported_steps'):
            raise ValueError(
                f'{onnx_file}: the config\'s test pipeline has steps this '
                f'runner does not reproduce ({meta["unsupported_steps"]}); '
                'embed with mmtfclip.apis.extract_tracklet_features instead.')
        mode = meta.get('sample_mode', 'dense')
        if mode != 'dense':
            raise ValueError(
                f'{onnx_file}: the config\'s test pipeline samples frames in '
                f'{mode!r} mode; this runner reproduces dense testing only.')
        self.clip_len = int(meta.get('clip_len', shape[1]))
        self.img_size = tuple(
            int(v) for v in meta.get(
                'img_size', f'{shape[3]},{shape[4]}').split(','))  # (h, w)
        if (self.clip_len, *self.img_size) != tuple(shape[1:2] + shape[3:]):
            raise ValueError(
                f'{onnx_file}: its metadata says clips of {self.clip_len} '
                f'frames of {self.img_size}, its input is {shape}.')
        interpolation = meta.get('resize_interpolation', 'bilinear')
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(f'{onnx_file}: unknown resize interpolation '
                             f'{interpolation!r}.')
        self.interpolation = _INTERPOLATIONS[interpolation]
        self.num_cams = int(meta.get('num_cams', 0))

    # ------------------------------------------------------------------
    # Frames
    # ------------------------------------------------------------------
    def _read(self, path: str, where: str) -> np.ndarray:
        data = np.fromfile(path, dtype=np.uint8)
        if _CV2_RGB_FLAG is not None:
            img = cv2.imdecode(data, _CV2_RGB_FLAG)
        else:
            img = cv2.imdecode(data, cv2.IMREAD_COLOR)
            if img is not None:
                img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        if img is None:
            raise ValueError(f'{where}: cannot decode the frame {path}.')
        return img

    def _frames(self, tracklet: TrackletInput, i: int,
                channel_order: str) -> List[np.ndarray]:
        """The frames of one tracklet, uint8 RGB ``[H, W, 3]`` each."""
        where = f'Tracklet {i}'
        if isinstance(tracklet, (str, os.PathLike)):
            folder = os.fspath(tracklet)
            if not osp.isdir(folder):
                raise FileNotFoundError(
                    f'{where}: {folder} is not a folder of frames.')
            names = sorted((n for n in os.listdir(folder)
                            if n.lower().endswith(IMG_EXTENSIONS)
                            and osp.isfile(osp.join(folder, n))),
                           key=_natural_key)
            if not names:
                raise ValueError(f'{where}: {folder} holds no image.')
            return [self._read(osp.join(folder, n), where) for n in names]
        if isinstance(tracklet, np.ndarray):
            if tracklet.ndim != 4:
                raise ValueError(f'{where}: an array must be [T, H, W, 3], '
                                 f'got shape {tracklet.shape}.')
            items = list(tracklet)
        else:
            items = list(tracklet)
        if not items:
            raise ValueError(f'{where} has no frame.')
        frames = []
        for k, item in enumerate(items):
            if isinstance(item, (str, os.PathLike)):
                frames.append(self._read(os.fspath(item), where))
                continue
            if type(item).__module__.startswith('PIL.'):
                if item.mode != 'RGB':
                    item = item.convert('RGB')
                frames.append(np.asarray(item))
                continue
            if not isinstance(item, np.ndarray):
                raise TypeError(
                    f'{where}, frame {k}: expected a path, a PIL image or a '
                    f'uint8 array, got {type(item).__name__}.')
            if item.dtype != np.uint8 or item.ndim != 3 or item.shape[2] != 3:
                raise ValueError(
                    f'{where}, frame {k}: expected uint8 [H, W, 3], got '
                    f'{item.dtype} {item.shape}.')
            frames.append(item[..., ::-1] if channel_order == 'bgr' else item)
        return frames

    def _clips(self, frames: List[np.ndarray]) -> np.ndarray:
        """``[num_clips, T, 3, H, W]`` uint8 dense clips."""
        h, w = self.img_size
        resized = np.stack([
            f if f.shape[:2] == (h, w) else cv2.resize(
                np.ascontiguousarray(f), (w, h),
                interpolation=self.interpolation) for f in frames
        ])
        inds = dense_clip_indices(len(frames), self.clip_len)
        return np.ascontiguousarray(resized[inds].transpose(0, 1, 4, 2, 3))

    # ------------------------------------------------------------------
    # Embedding
    # ------------------------------------------------------------------
    def __call__(self,
                 tracklets: Sequence[TrackletInput],
                 camids: Optional[Sequence[int]] = None,
                 normalize: bool = False,
                 channel_order: str = 'rgb') -> np.ndarray:
        """Embed tracklets.

        Args:
            tracklets (Sequence): Each a folder of frames (``str`` or
                ``Path``), a list of frame paths, of PIL images or of
                ``H x W x 3`` uint8 arrays (any sizes), or one uint8 array
                ``[T, H, W, 3]``.
            camids (Sequence[int], optional): 0-based camera of each
                tracklet; required by a graph with SIE (``cam_ids`` input).
                Defaults to None.
            normalize (bool): L2-normalise each embedding. Defaults to False
                (the model's embedding, as ``extract_tracklet_features``).
            channel_order (str): ``'rgb'`` or ``'bgr'`` (e.g. from
                ``cv2.imread``), for arrays. Defaults to ``'rgb'``.

        Returns:
            np.ndarray: ``[N, D]`` float32 embeddings, in input order.
        """
        if channel_order not in ('rgb', 'bgr'):
            raise ValueError("channel_order must be 'rgb' or 'bgr', got "
                             f'{channel_order!r}.')
        if isinstance(tracklets, (str, os.PathLike, np.ndarray)):
            raise TypeError('Pass a sequence of tracklets (e.g. [folder]), '
                            f'not one {type(tracklets).__name__}.')
        cams = self._camera_ids(camids, len(tracklets))
        clips, counts, clip_cams = [], [], []
        for i, tracklet in enumerate(tracklets):
            tracklet_clips = self._clips(
                self._frames(tracklet, i, channel_order))
            clips.append(tracklet_clips)
            counts.append(len(tracklet_clips))
            clip_cams.extend([cams[i]] * len(tracklet_clips))
        if not clips:
            raise ValueError('No tracklet to embed.')
        rows = self._run(np.concatenate(clips), np.array(clip_cams, np.int64))
        ends = np.cumsum(counts)
        embeddings = np.stack([
            part.mean(axis=0) for part in np.split(rows, ends[:-1])
        ]).astype(np.float32)
        if normalize:
            norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
            embeddings /= np.maximum(norms, 1e-12)
        return embeddings

    def _camera_ids(self, camids: Optional[Sequence[int]],
                    num: int) -> List[int]:
        if camids is None:
            if self.use_camera_ids:
                raise ValueError(
                    f'{self.onnx_file} uses camera ids (SIE): pass camids, '
                    'one 0-based camera per tracklet.')
            return [0] * num
        if len(camids) != num:
            raise ValueError(f'Got {len(camids)} camids for {num} '
                             'tracklets.')
        cams = [int(c) for c in camids]
        if self.use_camera_ids and self.num_cams:
            bad = [c for c in cams if not 0 <= c < self.num_cams]
            if bad:
                raise ValueError(f'camids {bad} are not among the model\'s '
                                 f'{self.num_cams} cameras (0-based).')
        return cams

    def _run(self, clips: np.ndarray, cams: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(clips), self.max_clips):
            feeds: Dict[str, np.ndarray] = dict(frames=clips[start:start +
                                                             self.max_clips])
            if self.use_camera_ids:
                feeds['cam_ids'] = cams[start:start + self.max_clips]
            out.append(self.session.run(['embedding'], feeds)[0])
        return np.concatenate(out)


def pipeline_metadata(test_pipeline: Sequence[dict],
                      num_cams: int) -> Tuple[Dict[str, str], List[str]]:
    """The ONNX metadata that tells :class:`ONNXTrackletRunner` how the
    config's test pipeline prepares a tracklet.

    Args:
        test_pipeline (Sequence[dict]): The config's test pipeline.
        num_cams (int): Cameras of the model's SIE (0 without).

    Returns:
        tuple[dict, list]: The ``mmtfclip.*`` metadata (strings), and the
        pipeline steps the runner does not reproduce (also recorded, so
        that the runner refuses the file rather than embed differently).
    """
    meta = {'num_cams': str(num_cams)}
    unsupported = []
    for step in test_pipeline:
        kind = str(step.get('type', '')).split('.')[-1]
        if kind == 'SampleTrackletFrames':
            meta['sample_mode'] = str(step.get('mode', 'rrs'))
            meta['clip_len'] = str(step.get('clip_len', 8))
        elif kind == 'TrackletResize':
            w, h = step['scale']
            meta['img_size'] = f'{h},{w}'
            meta['resize_interpolation'] = str(
                step.get('interpolation', 'bilinear'))
        elif kind == 'LoadTrackletFrames':
            backend = step.get('imdecode_backend', 'cv2')
            if backend != 'cv2':
                unsupported.append(f'LoadTrackletFrames(imdecode_backend='
                                   f'{backend!r})')
        elif kind != 'PackTrackletInputs':
            unsupported.append(kind)
    if unsupported:
        meta['unsupported_steps'] = ', '.join(unsupported)
    return {META_PREFIX + k: v for k, v in meta.items()}, unsupported
