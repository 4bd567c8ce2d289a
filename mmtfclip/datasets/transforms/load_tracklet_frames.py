# Copyright (c) mmtfclip contributors. All rights reserved.
import logging
from typing import Dict, Optional

import cv2
import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.fileio import get_file_backend
from mmengine.logging import print_log

from mmtfclip.registry import TRANSFORMS

_JPEG_MAGIC = b'\xff\xd8'
# OpenCV >= 4.10 decodes straight to RGB; older versions need a conversion.
_CV2_RGB_FLAG = getattr(cv2, 'IMREAD_COLOR_RGB', cv2.IMREAD_COLOR)


def _turbojpeg_decoder():
    """A TurboJPEG instance, or a clear error saying what is missing."""
    try:
        import turbojpeg
    except ImportError as err:
        raise ImportError(
            "imdecode_backend='turbojpeg' needs PyTurboJPEG: `pip install "
            "PyTurboJPEG` (and libjpeg-turbo), or use imdecode_backend='cv2'"
        ) from err
    try:
        return turbojpeg.TurboJPEG()
    except (OSError, RuntimeError) as err:
        raise RuntimeError(
            "imdecode_backend='turbojpeg': PyTurboJPEG is installed but "
            'cannot load the libjpeg-turbo library (e.g. `apt install '
            "libturbojpeg0`); or use imdecode_backend='cv2'. Cause: "
            f'{err}') from err


@TRANSFORMS.register_module()
class LoadTrackletFrames(BaseTransform):
    """Read and decode the sampled frames of a tracklet.

    Bytes come through mmengine's file backends (local disk by default;
    ``backend_args`` selects another, e.g. petrel or HTTP) and are decoded by
    ``mmcv.imfrombytes`` (OpenCV by default) or by libjpeg-turbo. A frame
    sampled several times is read and decoded once. When all frames have the
    same size, ``imgs`` is one uint8 array ``[num_sampled, H, W, 3]`` (RGB);
    otherwise a list of ``[H, W, 3]`` arrays that ``TrackletResize`` turns
    into one array.

    A frame that cannot be read or decoded raises an error naming the frame
    and its tracklet (``on_bad_frame='raise'``), or, with ``'skip'``, is
    dropped from the tracklet with a warning and replaced by the nearest
    readable frame in time; a tracklet without any readable frame is still
    an error. A frame is never replaced by zeros.

    Required Keys:

    - frame_paths
    - frame_inds

    Modified Keys:

    - frame_inds (with ``'skip'``, bad frames replaced)

    Added Keys:

    - imgs
    - img_shape
    - ori_shape

    Args:
        imdecode_backend (str): ``'cv2'``, ``'pillow'`` or ``'turbojpeg'``
            (JPEG only; other formats fall back to OpenCV). Defaults to
            ``'cv2'``.
        backend_args (dict, optional): Arguments of the mmengine file
            backend. Defaults to None (local disk).
        on_bad_frame (str): ``'raise'`` or ``'skip'``. Defaults to
            ``'raise'``.
    """

    def __init__(self,
                 imdecode_backend: str = 'cv2',
                 backend_args: Optional[dict] = None,
                 on_bad_frame: str = 'raise') -> None:
        if imdecode_backend not in ('cv2', 'pillow', 'turbojpeg'):
            raise ValueError("imdecode_backend must be 'cv2', 'pillow' or "
                             f"'turbojpeg', got {imdecode_backend!r}")
        if on_bad_frame not in ('raise', 'skip'):
            raise ValueError("on_bad_frame must be 'raise' or 'skip', got "
                             f'{on_bad_frame!r}')
        self.imdecode_backend = imdecode_backend
        self.backend_args = backend_args
        self.on_bad_frame = on_bad_frame
        # Fail at build time rather than in a worker on the first batch.
        self._jpeg = _turbojpeg_decoder() \
            if imdecode_backend == 'turbojpeg' else None

    def __getstate__(self) -> dict:
        # The libjpeg-turbo handle does not pickle; workers make their own.
        state = self.__dict__.copy()
        state['_jpeg'] = None
        return state

    def _decode(self, content: bytes) -> np.ndarray:
        if self.imdecode_backend == 'turbojpeg' and \
                content[:2] == _JPEG_MAGIC:
            from turbojpeg import TJPF_RGB
            if self._jpeg is None:
                self._jpeg = _turbojpeg_decoder()
            return self._jpeg.decode(content, pixel_format=TJPF_RGB)
        if self.imdecode_backend == 'pillow':
            return mmcv.imfrombytes(
                content, flag='color', channel_order='rgb', backend='pillow')
        # OpenCV returns None for bytes it cannot decode: check before any
        # colour conversion, whose own error would hide the cause.
        img = mmcv.imfrombytes(
            content, flag=_CV2_RGB_FLAG, channel_order='bgr', backend='cv2')
        if img is None:
            raise ValueError('not a decodable image')
        if _CV2_RGB_FLAG == cv2.IMREAD_COLOR:
            cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=img)
        return img

    def _read(self, backend, path: str) -> np.ndarray:
        img = self._decode(backend.get(path))
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f'not a colour image (shape {img.shape})')
        return img

    def transform(self, results: dict) -> dict:
        """Load the frames named by ``frame_inds``.

        Args:
            results (dict): With ``frame_paths`` and ``frame_inds``.

        Returns:
            dict: ``results`` with the frames.
        """
        paths = results['frame_paths']
        inds = np.asarray(results['frame_inds'], dtype=np.int64)
        backend = get_file_backend(
            paths[0], backend_args=self.backend_args, enable_singleton=True)
        decoded: Dict[int, np.ndarray] = {}
        bad = set()

        def load(i: int) -> Optional[np.ndarray]:
            if i in decoded:
                return decoded[i]
            if i in bad:
                return None
            try:
                decoded[i] = self._read(backend, paths[i])
                return decoded[i]
            except Exception as err:  # any backend or decoder failure
                where = (f'frame {paths[i]} (index {i} of tracklet '
                         f'{results.get("tracklet_id")}, split '
                         f'{results.get("split")}, pid {results.get("pid")})')
                if self.on_bad_frame == 'raise':
                    raise OSError(f'cannot read {where}: {err}') from err
                print_log(
                    f'skipping unreadable {where}: {err}',
                    logger='current',
                    level=logging.WARNING)
                bad.add(i)
                return None

        new_inds = inds.copy()
        for k, i in enumerate(inds.tolist()):
            if load(i) is not None:
                continue
            # Nearest readable frame in time: i-1, i+1, i-2, i+2, ...
            for d in range(1, len(paths)):
                j = next((c for c in (i - d, i + d)
                          if 0 <= c < len(paths) and load(c) is not None),
                         None)
                if j is not None:
                    new_inds[k] = j
                    break
            else:
                raise OSError(
                    f'tracklet {results.get("tracklet_id")} (split '
                    f'{results.get("split")}, first frame {paths[0]}) has '
                    'no readable frame')

        frames = [decoded[i] for i in new_inds.tolist()]
        shapes = {f.shape for f in frames}
        if len(shapes) == 1:
            imgs = np.empty((len(frames), ) + frames[0].shape, np.uint8)
            for k, f in enumerate(frames):
                imgs[k] = f
        else:
            # Copies, so that per-frame edits never alias a repeated frame.
            imgs = [f.copy() for f in frames]
        results['imgs'] = imgs
        results['frame_inds'] = new_inds
        results['img_shape'] = frames[0].shape[:2]
        results['ori_shape'] = frames[0].shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}('
                f'imdecode_backend={self.imdecode_backend!r}, '
                f'backend_args={self.backend_args}, '
                f'on_bad_frame={self.on_bad_frame!r})')
