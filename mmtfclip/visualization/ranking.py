# Copyright (c) mmtfclip contributors. All rights reserved.
"""Ranking pictures: a query tracklet and its top-k gallery tracklets."""
from typing import List, Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np

GREEN = (40, 170, 60)  # RGB: a true match
RED = (210, 40, 40)  # RGB: a wrong match
GREY = (128, 128, 128)  # RGB: identity unknown


def _strip(frame_paths: Sequence[str], num_frames: int,
           frame_size: Tuple[int, int]) -> np.ndarray:
    """``num_frames`` evenly spaced frames of a tracklet, side by side."""
    if len(frame_paths) == 0:
        raise ValueError('A tracklet to draw has no frames.')
    h, w = frame_size
    idx = np.linspace(0, len(frame_paths) - 1, num_frames).round().astype(int)
    frames = []
    for i in idx:
        img = mmcv.imread(frame_paths[i], channel_order='rgb')
        if img is None:
            raise FileNotFoundError(
                f'Cannot read frame {frame_paths[i]} to draw it.')
        frames.append(cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA))
    return np.concatenate(frames, axis=1)


def _framed(strip: np.ndarray, colour, border: int) -> np.ndarray:
    return cv2.copyMakeBorder(
        strip, border, border, border, border, cv2.BORDER_CONSTANT,
        value=colour)


def _label(img: np.ndarray, text: str) -> np.ndarray:
    """Put ``text`` on a white band above ``img``."""
    band = np.full((18, img.shape[1], 3), 255, np.uint8)
    cv2.putText(band, text, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, img], axis=0)


def render_ranking(query: Sequence[str],
                   gallery: List[Sequence[str]],
                   distances: Sequence[float],
                   matches: Optional[Sequence[Optional[bool]]] = None,
                   query_label: str = 'query',
                   gallery_labels: Optional[Sequence[str]] = None,
                   num_frames: int = 4,
                   frame_size: Tuple[int, int] = (128, 64)) -> np.ndarray:
    """Draw a query tracklet above its ranked gallery tracklets.

    Each tracklet is a strip of ``num_frames`` evenly spaced frames. Gallery
    strips are framed green for a true match, red for a wrong one and grey
    when the identity is unknown, and labelled with their rank and distance.

    Args:
        query (Sequence[str]): The query's frame paths, in temporal order.
        gallery (list[Sequence[str]]): The frame paths of each ranked
            gallery tracklet, best first.
        distances (Sequence[float]): The distance of each gallery tracklet.
        matches (Sequence[bool | None], optional): Whether each gallery
            tracklet has the query's identity; None where unknown.
            Defaults to None (all unknown).
        query_label (str): Text above the query. Defaults to ``'query'``.
        gallery_labels (Sequence[str], optional): Extra text for each gallery
            tracklet (e.g. its id and camera). Defaults to None.
        num_frames (int): Frames shown per tracklet. Defaults to 4.
        frame_size (tuple[int, int]): Size of each shown frame as (h, w).
            Defaults to (128, 64).

    Returns:
        np.ndarray: The picture, RGB uint8 ``[H, W, 3]``.
    """
    if len(gallery) != len(distances):
        raise ValueError(f'{len(gallery)} gallery tracklets but '
                         f'{len(distances)} distances.')
    if matches is not None and len(matches) != len(gallery):
        raise ValueError(f'{len(gallery)} gallery tracklets but '
                         f'{len(matches)} match flags.')
    border = 3
    rows = [
        _label(
            _framed(
                _strip(query, num_frames, frame_size), (0, 0, 0), border),
            query_label)
    ]
    for rank, (frames, dist) in enumerate(zip(gallery, distances), 1):
        match = None if matches is None else matches[rank - 1]
        colour = GREY if match is None else (GREEN if match else RED)
        text = f'#{rank}  d={dist:.3f}'
        if gallery_labels is not None:
            text += f'  {gallery_labels[rank - 1]}'
        strip = _framed(_strip(frames, num_frames, frame_size), colour, border)
        rows.append(_label(strip, text))
    width = max(r.shape[1] for r in rows)
    rows = [
        np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)),
               constant_values=255) for r in rows
    ]
    # The query on top, a gap, then the gallery best first.
    gap = np.full((10, width, 3), 255, np.uint8)
    return np.concatenate([rows[0], gap] + rows[1:], axis=0)


def ranking_from_dump(dump: dict,
                      query_pos: int,
                      topk: int = 5,
                      **kwargs) -> np.ndarray:
    """Draw the ranking of one query from a ``ReIDMetric`` dump.

    Args:
        dump (dict): The arrays of the ``.npz`` written by ``ReIDMetric``
            with ``dump_path`` (needs ``frame_paths``).
        query_pos (int): Which query, as a position in ``query_index``.
        topk (int): How many gallery tracklets to show. Defaults to 5.
        **kwargs: Passed to :func:`render_ranking`.

    Returns:
        np.ndarray: The picture, RGB uint8.
    """
    if 'frame_paths' not in dump:
        raise KeyError('The dump has no frame paths; it was written from '
                       'samples without `frame_paths` in their metainfo.')
    offsets = dump['frame_path_offsets']
    paths = dump['frame_paths']

    def frames(i):
        return list(paths[offsets[i]:offsets[i + 1]])

    q = int(dump['query_index'][query_pos])
    gallery_index = dump['gallery_index']
    dist = dump['distmat'][query_pos]
    order = np.argsort(dist, kind='stable')
    q_pid, q_cam = dump['pids'][q], dump['camids'][q]
    chosen = []
    for j in order:
        g = int(gallery_index[j])
        # As in evaluation: the query itself and same-id same-camera
        # tracklets are not ranked.
        if dump['pids'][g] == q_pid and dump['camids'][g] == q_cam:
            continue
        chosen.append((g, float(dist[j])))
        if len(chosen) == topk:
            break
    return render_ranking(
        frames(q), [frames(g) for g, _ in chosen], [d for _, d in chosen],
        matches=[bool(dump['pids'][g] == q_pid) for g, _ in chosen],
        query_label=f'query id {q_pid} cam {q_cam + 1}',
        gallery_labels=[
            f'id {dump["pids"][g]} cam {dump["camids"][g] + 1}'
            for g, _ in chosen
        ],
        **kwargs)
