# Copyright (c) mmtfclip contributors. All rights reserved.
import numpy as np
from mmcv.transforms import BaseTransform

from mmtfclip.registry import TRANSFORMS


@TRANSFORMS.register_module()
class SampleTrackletFrames(BaseTransform):
    """Choose which frames of a tracklet to load.

    Modes, for a tracklet of ``n`` frames and ``clip_len`` = T:

    - ``'rrs'`` (restricted random sampling): the tracklet is cut into T
      chunks; training takes a random frame of each chunk (uniformly within
      the chunk), ``test_mode`` the first one. ``chunks`` says how:

      - ``'ceil'`` (default, the TF-CLIP authors' ``VideoDataset`` in
        ``datasets/video_loader_xh.py``): chunks of ``ceil(n / T)``
        frames, the frames followed by copies of the last frame up to
        ``T * ceil(n / T)``; chunk ``s`` is positions ``[s * c, (s + 1) *
        c)`` of that padded strip. A draw that lands in the padding is the
        last frame, and for ``n < T`` the clip is ``0, 1, ..., n - 1, n - 1,
        ...``. The trailing chunks may hold only the last frame (n = 9,
        T = 8: chunks ``[0, 1], [2, 3], [4, 5], [6, 7], [8, 8], ...``).
      - ``'equal'``: T chunks of equal length (sizes differ by at most one
        frame), which cover the tracklet evenly; for ``n < T`` every chunk
        is one frame and the frames repeat in order (``0, 0, 1, 1, 2,
        ...``).
    - ``'dense'``: every frame, in consecutive clips of T; the last clip is
      padded by cycling its own frames (``24, 25, 24, 25, ...``), the
      frames the authors' ``'dense'`` test sampling picks. This is the
      reporting protocol; the packed input is then ``[N, T, 3, H, W]``.
    - ``'random'``: T consecutive frames from a random start (the centred
      window in ``test_mode``); shorter tracklets cycle their frames.
    - ``'evenly'``: T frames spread evenly from the first to the last
      frame, the same in training and test.

    Required Keys:

    - frame_paths

    Added Keys:

    - frame_inds (np.ndarray): int64 indices into ``frame_paths``, flat
      ``[num_clips * clip_len]`` in temporal order.
    - clip_len (int)
    - num_clips (int): 1, or ceil(n / T) for ``'dense'``.
    - total_frames (int)
    - sample_mode (str)

    Args:
        clip_len (int): Frames per clip (T). Defaults to 8.
        mode (str): ``'rrs'``, ``'dense'``, ``'random'`` or ``'evenly'``.
            Defaults to ``'rrs'``.
        test_mode (bool): Deterministic choice for evaluation.
            Defaults to False.
        chunks (str): How ``'rrs'`` cuts the tracklet: ``'ceil'`` (the
            authors') or ``'equal'``. Defaults to ``'ceil'``.
    """

    MODES = ('rrs', 'dense', 'random', 'evenly')
    CHUNKS = ('ceil', 'equal')

    def __init__(self,
                 clip_len: int = 8,
                 mode: str = 'rrs',
                 test_mode: bool = False,
                 chunks: str = 'ceil') -> None:
        if not isinstance(clip_len, int) or clip_len < 1:
            raise ValueError(f'clip_len must be a positive int, got '
                             f'{clip_len!r}')
        if mode not in self.MODES:
            raise ValueError(f'mode must be one of {self.MODES}, got '
                             f'{mode!r}')
        if chunks not in self.CHUNKS:
            raise ValueError(f'chunks must be one of {self.CHUNKS}, got '
                             f'{chunks!r}')
        self.clip_len = clip_len
        self.mode = mode
        self.test_mode = test_mode
        self.chunks = chunks

    def _rrs(self, num: int) -> np.ndarray:
        t = self.clip_len
        if self.chunks == 'equal':
            edges = np.arange(t + 1) * num // t
            starts = edges[:-1]
            sizes = np.maximum(edges[1:] - starts, 1)
            if self.test_mode:
                return starts
            return starts + (np.random.rand(t) * sizes).astype(np.int64)
        size = -(-num // t)
        inds = np.arange(t) * size
        if not self.test_mode:
            inds = inds + np.random.randint(0, size, size=t)
        # Positions past the end are the strip's copies of the last frame.
        return np.minimum(inds, num - 1)

    def _dense(self, num: int) -> np.ndarray:
        t = self.clip_len
        num_clips = -(-num // t)
        inds = np.arange(num_clips * t)
        last = (num_clips - 1) * t
        inds[last:] = last + np.arange(t) % (num - last)
        return inds

    def _random(self, num: int) -> np.ndarray:
        t = self.clip_len
        if num <= t:
            return np.arange(t) % num
        if self.test_mode:
            start = (num - t) // 2
        else:
            start = np.random.randint(num - t + 1)
        return start + np.arange(t)

    def _evenly(self, num: int) -> np.ndarray:
        return np.round(np.linspace(0, num - 1, self.clip_len))

    def transform(self, results: dict) -> dict:
        """Add the frame indices of the chosen mode.

        Args:
            results (dict): The tracklet's data info.

        Returns:
            dict: ``results`` with the added keys.
        """
        num = len(results['frame_paths'])
        if num == 0:
            raise ValueError(f'tracklet {results.get("tracklet_id")} '
                             f'({results.get("split")}) has no frame')
        inds = getattr(self, f'_{self.mode}')(num).astype(np.int64)
        results['frame_inds'] = inds
        results['clip_len'] = self.clip_len
        results['num_clips'] = len(inds) // self.clip_len
        results['total_frames'] = num
        results['sample_mode'] = self.mode
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(clip_len={self.clip_len}, '
                f'mode={self.mode!r}, test_mode={self.test_mode}, '
                f'chunks={self.chunks!r})')
