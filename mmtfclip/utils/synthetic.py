# Copyright (c) mmtfclip contributors. All rights reserved.
"""A synthetic video ReID dataset in the MARS layout.

:func:`make_synthetic_mars` renders person-like figures walking through a few
cameras and writes them exactly as MARS is published (``bbox_train/``,
``bbox_test/``, ``info/*.txt``, ``info/*.mat``), so the :class:`MARS`
dataset, the pipelines and the configs run on it unchanged. The demo and
many tests use it; ``tools/misc/make_synthetic_dataset.py`` is its command
line.

What makes it a re-identification problem rather than a colour lookup:

- identity lies in clothing colours (top, bottom, shoes, hair), a clothing
  pattern (plain, horizontal or vertical stripes, checks), an optional bag,
  and body shape (height, build, trousers or shorts);
- each camera has its own colour cast, brightness, blur and cluttered
  background, so the same person looks different across cameras and
  different persons look alike within one;
- position and scale drift and jitter over a tracklet, legs and arms swing,
  and some tracklets are partly occluded by a moving pole, a bar or a box;
- the test set has distractor tracklets (pid 0, gallery only) and junk
  tracklets (pid -1, mostly background) as MARS has.

Everything is drawn with vectorised numpy on one frame at a time and
written with OpenCV; the output depends only on the arguments (same seed,
same bytes on the same OpenCV build).
"""
import colorsys
import io
import os
import os.path as osp
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
from scipy.io import savemat

# Clothing colours for the lower body: denim, black, grey, khaki, brown,
# white, olive, maroon, navy, beige (RGB).
_BOTTOM_PALETTE = np.array(
    [[52, 73, 120], [25, 25, 28], [120, 120, 125], [170, 150, 100],
     [100, 65, 40], [225, 225, 220], [85, 95, 50], [110, 30, 40], [30, 35, 75],
     [200, 185, 150]],
    dtype=np.float32)
_HAIR_PALETTE = np.array([[20, 15, 10], [70, 45, 25], [190, 160, 100],
                          [140, 140, 140], [120, 50, 20]],
                         dtype=np.float32)
_SKIN_PALETTE = np.array(
    [[240, 200, 170], [210, 160, 125], [160, 110, 80], [100, 70, 50]],
    dtype=np.float32)
_PATTERNS = ('plain', 'hstripes', 'vstripes', 'checks')


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255


def _identity(rng: np.random.Generator, index: int) -> dict:
    """Appearance of one person; ``index`` spreads the top colour hues."""
    # The golden-ratio sequence keeps the hues of consecutive ids apart.
    hue = (index * 0.618034 + rng.uniform(-0.04, 0.04)) % 1.0
    top = _hsv(hue, rng.uniform(0.55, 1.0), rng.uniform(0.45, 0.95))
    second = _hsv(hue + rng.uniform(0.25, 0.75), rng.uniform(0.0, 0.9),
                  rng.uniform(0.2, 1.0))
    return dict(
        top=top,
        second=second,
        pattern=_PATTERNS[rng.integers(len(_PATTERNS))],
        period=float(rng.uniform(3.5, 7)),
        bottom=_BOTTOM_PALETTE[rng.integers(len(_BOTTOM_PALETTE))] *
        rng.uniform(0.85, 1.15),
        shorts=bool(rng.random() < 0.25),
        shoes=_hsv(rng.random(), rng.uniform(0, 0.6), rng.uniform(0.1, 0.9)),
        hair=_HAIR_PALETTE[rng.integers(len(_HAIR_PALETTE))],
        skin=_SKIN_PALETTE[rng.integers(len(_SKIN_PALETTE))],
        height=float(rng.uniform(0.78, 0.92)),
        build=float(rng.uniform(0.8, 1.25)),
        bag=_hsv(rng.random(), rng.uniform(0.3, 1.0), rng.uniform(0.2, 0.9))
        if rng.random() < 0.35 else None,
        bag_side=1.0 if rng.random() < 0.5 else -1.0,
    )


def _camera(rng: np.random.Generator, shape: Tuple[int, int]) -> dict:
    """Colour cast, lighting, blur and a wide cluttered background."""
    h, w = shape
    bg_w = w * 4
    yy, xx = np.mgrid[0:h, 0:bg_w].astype(np.float32)
    horizon = rng.uniform(0.45, 0.7) * h
    wall = _hsv(rng.random(), rng.uniform(0.05, 0.4), rng.uniform(0.35, 0.8))
    floor = _hsv(rng.random(), rng.uniform(0.0, 0.3), rng.uniform(0.25, 0.6))
    bg = np.where((yy < horizon)[..., None], wall, floor)
    # A lighting gradient across the scene.
    bg = bg * (0.8 + 0.4 * (xx / bg_w))[..., None]
    for _ in range(int(rng.integers(14, 24))):
        colour = _hsv(rng.random(), rng.uniform(0, 0.5),
                      rng.uniform(0.25, 0.85))
        cx, cy = rng.uniform(0, bg_w), rng.uniform(0, h)
        rx, ry = rng.uniform(2, w * 0.35), rng.uniform(2, h * 0.25)
        if rng.random() < 0.5:
            mask = (np.abs(xx - cx) < rx) & (np.abs(yy - cy) < ry)
        else:
            mask = ((xx - cx) / rx)**2 + ((yy - cy) / ry)**2 < 1
        bg[mask] = colour
    # Floor tiles or wall panels: a fine texture cue of the camera.
    lines = ((xx + 0.5 * yy) % rng.uniform(10, 20) < 1) | (
        yy % rng.uniform(9, 18) < 1)
    bg[lines] *= 0.8
    return dict(
        background=np.clip(bg, 0, 255).astype(np.float32),
        gain=rng.uniform(0.8, 1.2, size=3).astype(np.float32),
        brightness=float(rng.uniform(0.75, 1.15)),
        offset=rng.uniform(-12, 12, size=3).astype(np.float32),
        blur=float(rng.choice([0.0, 0.8, 1.3])),
        noise=float(rng.uniform(2.0, 6.0)),
    )


class _Renderer:
    """Draws figures on a fixed-size canvas with boolean masks."""

    def __init__(self, shape: Tuple[int, int]) -> None:
        self.h, self.w = shape
        self.yy, self.xx = np.mgrid[0:self.h, 0:self.w].astype(np.float32)

    def person(self,
               canvas: np.ndarray,
               ident: dict,
               cx: float,
               top: float,
               height: float,
               phase: float,
               visible: float = 1.0) -> None:
        """Draw ``ident`` in place; ``phase`` drives the walking cycle."""
        yy, xx = self.yy, self.xx
        u = height
        half = 0.1 * u * ident['build']
        head_cy, head_r = top + 0.075 * u, 0.06 * u
        neck = top + 0.14 * u
        hip = top + 0.5 * u
        foot = top + u * visible
        swing = np.sin(phase)

        # Legs: slanted bars whose feet swing in opposite directions.
        leg_half = 0.05 * u * ident['build']
        t = np.clip((yy - hip) / max(foot - hip, 1.0), 0, 1)
        for side in (-1.0, 1.0):
            centre = cx + side * 0.055 * u + side * swing * 0.06 * u * t
            leg = (yy >= hip) & (yy < foot) & (np.abs(xx - centre) < leg_half)
            canvas[leg] = ident['bottom']
            if ident['shorts']:
                canvas[leg & (yy > hip + 0.2 * u)] = ident['skin']
            canvas[leg & (yy > top + 0.94 * u)] = ident['shoes']

        # Torso with the clothing pattern.
        torso = (yy >= neck) & (yy < hip + 0.02 * u) & (np.abs(xx - cx) < half)
        period = ident['period']
        if ident['pattern'] == 'hstripes':
            alt = ((yy - neck) // period) % 2 == 1
        elif ident['pattern'] == 'vstripes':
            alt = ((xx - cx + 200) // period) % 2 == 1
        elif ident['pattern'] == 'checks':
            alt = (((yy - neck) // period) + ((xx - cx + 200) // period)) % 2 \
                == 1
        else:
            alt = np.zeros_like(torso)
        canvas[torso] = ident['top']
        canvas[torso & alt] = ident['second']

        # Arms swing against the legs; sleeves match the top.
        arm_half = 0.035 * u * ident['build']
        arm_t = np.clip((yy - neck) / (0.36 * u), 0, 1)
        for side in (-1.0, 1.0):
            centre = cx + side * (half + arm_half) - side * swing * 0.05 * u \
                * arm_t
            arm = (yy >= neck + 0.01 * u) & (yy < neck + 0.36 * u) & (
                np.abs(xx - centre) < arm_half)
            canvas[arm] = ident['top']
            canvas[arm & (yy > neck + 0.28 * u)] = ident['skin']

        if ident['bag'] is not None:
            bx = cx + ident['bag_side'] * (half + 0.02 * u)
            bag = (np.abs(xx - bx) < 0.05 * u) & (yy > top + 0.3 * u) & (
                yy < top + 0.45 * u)
            canvas[bag] = ident['bag']

        head = ((xx - cx) /
                (head_r * 0.85))**2 + ((yy - head_cy) / head_r)**2 < 1
        canvas[head] = ident['skin']
        canvas[head & (yy < head_cy - 0.25 * head_r)] = ident['hair']

    def occluder(self, canvas: np.ndarray, kind: int, pos: float,
                 colour: np.ndarray) -> None:
        """A pole (0), a bar across the legs (1) or a box (2)."""
        yy, xx = self.yy, self.xx
        if kind == 0:
            mask = np.abs(xx - pos * self.w) < 0.12 * self.w
        elif kind == 1:
            mask = yy > (0.62 + 0.1 * pos) * self.h
        else:
            mask = (np.abs(xx - pos * self.w) < 0.3 * self.w) & (
                yy > 0.55 * self.h)
        canvas[mask] = colour
        # Texture keeps the occluder from being a flat colour.
        canvas[mask & ((yy + xx) % 5 < 1)] *= 0.7


def _render_tracklet(renderer: _Renderer, ident: Optional[dict], cam: dict,
                     num_frames: int, out_size: Tuple[int,
                                                      int], noise: np.ndarray,
                     rng: np.random.Generator, junk: bool) -> List[np.ndarray]:
    """Frames of one tracklet, drawn at the renderer's size and upscaled."""
    h, w = renderer.h, renderer.w
    bg_w = cam['background'].shape[1]
    x0 = rng.uniform(0, bg_w - w - 2 * num_frames)
    pan = rng.uniform(-0.75, 0.75)
    scale = rng.uniform(0.9, 1.05)
    cx0 = w * (0.5 + rng.uniform(-0.06, 0.06))
    drift = rng.uniform(-0.3, 0.3)
    top0 = rng.uniform(0.02, 0.08) * h
    phase0, step = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 0.9)
    light = cam['brightness'] * rng.uniform(0.9, 1.1)
    occlude = rng.random() < 0.3
    occ_kind, occ_pos = int(rng.integers(3)), rng.uniform(0.1, 0.9)
    occ_speed = rng.uniform(-0.04, 0.04)
    occ_colour = _hsv(rng.random(), rng.uniform(0, 0.7), rng.uniform(0.2, 0.9))
    if junk:
        # Junk: a fragment of a person at the border, mostly background.
        cx0 = rng.choice([-0.08, 1.08]) * w

    frames = []
    for f in range(num_frames):
        left = int(np.clip(x0 + pan * f, 0, bg_w - w))
        canvas = cam['background'][:, left:left + w].copy()
        if ident is not None:
            height = ident['height'] * h * scale * (1 + 0.03 * np.sin(f / 3))
            renderer.person(
                canvas,
                ident,
                cx=cx0 + drift * f + rng.normal(0, 0.5),
                top=top0 + rng.normal(0, 0.5),
                height=height,
                phase=phase0 + step * f)
        if occlude:
            renderer.occluder(canvas, occ_kind,
                              float(np.clip(occ_pos + occ_speed * f, 0, 1)),
                              occ_colour)
        img = cv2.resize(
            canvas, out_size[::-1], interpolation=cv2.INTER_LINEAR)
        img *= cam['gain'] * (light * rng.uniform(0.97, 1.03))
        img += cam['offset']
        if cam['blur'] > 0:
            img = cv2.GaussianBlur(img, (0, 0), cam['blur'])
        # Sensor noise from a bank of noise frames: drawing fresh Gaussian
        # noise for every frame would cost more than the drawing itself.
        img += noise[rng.integers(len(noise))] * cam['noise']
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


def _savemat(path: str, variables: Dict[str, np.ndarray]) -> None:
    """``scipy.io.savemat`` without the creation time in the header.

    The 116-byte text header of a MATLAB 5 file is free-form; scipy puts the
    time in it, which would make two runs with the same seed differ.
    """
    buffer = io.BytesIO()
    savemat(buffer, variables)
    content = bytearray(buffer.getvalue())
    content[:116] = b'MATLAB 5.0 MAT-file, written by mmtfclip'.ljust(116)
    with open(path, 'wb') as f:
        f.write(content)


def make_synthetic_mars(out_dir: str,
                        num_ids: int = 64,
                        num_cams: int = 3,
                        tracklets_per_id: int = 2,
                        min_frames: int = 8,
                        max_frames: int = 16,
                        seed: int = 0,
                        num_test_ids: Optional[int] = None,
                        num_distractors: Optional[int] = None,
                        num_junk: int = 2,
                        img_size: Tuple[int, int] = (256, 128),
                        jpeg_quality: int = 90) -> Dict[str, int]:
    """Write a synthetic dataset in the MARS layout.

    The defaults (64 identities: 48 to train, 16 to test; 3 cameras; 2
    tracklets per identity and camera; 8-16 frames of 256x128) make 288
    training and 96 + 4 distractor + 2 junk test tracklets, about 4,800
    frames, written in about 5 seconds on one core: the size the demo trains
    a tiny randomly initialised CLIP on, on a CPU, in minutes. Fewer
    training identities train faster but generalise worse: with 16 of them
    that model overfits and stays near 50% mAP, with 48 it passes 80%.

    Layout (as MARS): ``bbox_train/<pid4>/<pid4>C<cam>T<track4>F<frame3>.jpg``,
    ``bbox_test/`` (with ``0000`` distractors and ``00-1`` junk),
    ``info/train_name.txt``, ``info/test_name.txt``,
    ``info/tracks_train_info.mat`` (``track_train_info``),
    ``info/tracks_test_info.mat`` (``track_test_info``) and
    ``info/query_IDX.mat`` (``query_IDX``), the matrices saved as doubles
    like the published files. Training persons get odd ids (1, 3, ...), test
    persons even ids (2, 4, ...), so relabelling is exercised. Every person
    is seen by every camera; the query is the first tracklet of each test
    person in each camera, the gallery the rest plus the distractors and
    junk.

    Args:
        out_dir (str): Output folder (created; existing files of the same
            names are overwritten).
        num_ids (int): Persons in total, training and test. Defaults to 32.
        num_cams (int): Cameras, 2..9. Defaults to 3.
        tracklets_per_id (int): Tracklets of each person in each camera.
            Defaults to 2.
        min_frames (int): Fewest frames of a tracklet. Defaults to 8.
        max_frames (int): Most frames of a tracklet. Defaults to 16.
        seed (int): Random seed; the output depends only on the arguments.
            Defaults to 0.
        num_test_ids (int, optional): Persons of the test set; the others
            train. Defaults to half of ``num_ids`` (rounded down), at most
            16.
        num_distractors (int, optional): Distractor tracklets (pid 0) in the
            test set. Defaults to a quarter of the test persons (at least 2).
        num_junk (int): Junk tracklets (pid -1) in the test set.
            Defaults to 2.
        img_size (tuple[int, int]): Frame size as (h, w). Defaults to
            (256, 128), MARS's.
        jpeg_quality (int): JPEG quality. Defaults to 90.

    Returns:
        dict: Counts written: ``num_train_ids``, ``num_test_ids``,
        ``num_train_tracklets``, ``num_query``, ``num_gallery`` (valid
        gallery tracklets: test rows that are neither query nor junk),
        ``num_junk``, ``num_frames``.
    """
    if num_ids < 2:
        raise ValueError(f'num_ids must be >= 2 (train and test), got '
                         f'{num_ids}')
    if not 2 <= num_cams <= 9:
        raise ValueError(f'num_cams must be in 2..9 (MARS names hold one '
                         f'camera digit), got {num_cams}')
    if tracklets_per_id < 1:
        raise ValueError(f'tracklets_per_id must be >= 1, got '
                         f'{tracklets_per_id}')
    if not 1 <= min_frames <= max_frames <= 999:
        raise ValueError('need 1 <= min_frames <= max_frames <= 999, got '
                         f'{min_frames}, {max_frames}')
    num_test = min(16, num_ids // 2) if num_test_ids is None else \
        num_test_ids
    num_train = num_ids - num_test
    if not 1 <= num_test < num_ids:
        raise ValueError(f'num_test_ids must be in 1..{num_ids - 1}, got '
                         f'{num_test}')
    if num_distractors is None:
        num_distractors = max(2, num_test // 4)

    root = np.random.SeedSequence(seed)
    ident_seq, cam_seq, track_seq, noise_seq = root.spawn(4)
    ident_rng = np.random.default_rng(ident_seq)
    identities = [_identity(ident_rng, i) for i in range(num_ids)]
    distractor_ids = [
        _identity(ident_rng, num_ids + i) for i in range(num_distractors)
    ]
    cam_rng = np.random.default_rng(cam_seq)
    # Figures and backgrounds are drawn at half the frame size and
    # upscaled: four times fewer pixels to mask, and the softness of
    # surveillance crops; lighting, blur and noise apply at full size.
    render_size = (max(img_size[0] // 2, 8), max(img_size[1] // 2, 4))
    cameras = [_camera(cam_rng, render_size) for _ in range(num_cams)]
    renderer = _Renderer(render_size)
    noise = np.random.default_rng(noise_seq).standard_normal(
        (8, ) + tuple(img_size) + (3, ), dtype=np.float32)

    # (subset, pid, camera 1-based, tracklet number, identity, junk)
    plan = []
    for i in range(num_train):
        for c in range(num_cams):
            for t in range(tracklets_per_id):
                plan.append(
                    ('train', 2 * i + 1, c + 1, t + 1, identities[i], False))
    for i in range(num_test):
        for c in range(num_cams):
            for t in range(tracklets_per_id):
                plan.append(('test', 2 * i + 2, c + 1, t + 1,
                             identities[num_train + i], False))
    track_rng = np.random.default_rng(track_seq)
    counters: Dict[Tuple[int, int], int] = {}
    for ident in distractor_ids:
        c = int(track_rng.integers(num_cams)) + 1
        counters[(0, c)] = counters.get((0, c), 0) + 1
        plan.append(('test', 0, c, counters[(0, c)], ident, False))
    for _ in range(num_junk):
        c = int(track_rng.integers(num_cams)) + 1
        counters[(-1, c)] = counters.get((-1, c), 0) + 1
        plan.append(('test', -1, c, counters[(-1, c)],
                     identities[int(track_rng.integers(num_ids))], True))

    frame_counts = track_rng.integers(
        min_frames, max_frames + 1, size=len(plan))
    track_seeds = np.random.SeedSequence(seed + 1).spawn(len(plan))

    names: Dict[str, List[Tuple[str, list]]] = dict(train=[], test=[])
    num_frames = 0
    for (subset, pid, cam, number, ident,
         junk), count, tseed in zip(plan, frame_counts, track_seeds):
        folder = '00-1' if pid == -1 else f'{pid:04d}'
        home = osp.join(out_dir, f'bbox_{subset}', folder)
        os.makedirs(home, exist_ok=True)
        frames = _render_tracklet(renderer, ident, cameras[cam - 1],
                                  int(count), tuple(img_size), noise,
                                  np.random.default_rng(tseed), junk)
        frame_names = []
        for f, img in enumerate(frames):
            name = f'{folder}C{cam}T{number:04d}F{f + 1:03d}.jpg'
            params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
            if not cv2.imwrite(osp.join(home, name), img[..., ::-1], params):
                raise OSError(f'could not write {osp.join(home, name)}')
            frame_names.append(name)
        num_frames += len(frames)
        names[subset].append((frame_names[0], [frame_names, pid, cam]))

    info_dir = osp.join(out_dir, 'info')
    os.makedirs(info_dir, exist_ok=True)
    rows = {}
    for subset in ('train', 'test'):
        # MARS lists its frame names in sorted order and the tracklets
        # follow that order.
        ordered = [entry for _, entry in sorted(names[subset])]
        with open(osp.join(info_dir, f'{subset}_name.txt'), 'w') as f:
            for frame_names, _, _ in ordered:
                f.write('\n'.join(frame_names) + '\n')
        table, start = [], 1
        for frame_names, pid, cam in ordered:
            end = start + len(frame_names) - 1
            table.append([start, end, pid, cam])
            start = end + 1
        rows[subset] = np.array(table, dtype=np.float64)

    _savemat(
        osp.join(info_dir, 'tracks_train_info.mat'),
        dict(track_train_info=rows['train']))
    _savemat(
        osp.join(info_dir, 'tracks_test_info.mat'),
        dict(track_test_info=rows['test']))
    test_names = [entry for _, entry in sorted(names['test'])]
    query_rows = [
        r + 1 for r, (frame_names, pid, _) in enumerate(test_names)
        if pid > 0 and 'T0001F' in frame_names[0]
    ]
    _savemat(
        osp.join(info_dir, 'query_IDX.mat'),
        dict(query_IDX=np.array([query_rows], dtype=np.float64)))

    num_test_rows = len(test_names)
    return dict(
        num_train_ids=num_train,
        num_test_ids=num_test,
        num_train_tracklets=len(names['train']),
        num_query=len(query_rows),
        num_gallery=num_test_rows - len(query_rows) - num_junk,
        num_junk=num_junk,
        num_frames=num_frames)
