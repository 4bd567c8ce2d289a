# Copyright (c) mmtfclip contributors. All rights reserved.
"""Searching one's own footage: gallery folders, a query from a video and a
box track, embedding in batches, a gallery-embedding cache, ranking."""
import csv
import json
import os
import os.path as osp
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.utils import ProgressBar, mkdir_or_exist

from mmtfclip.datasets.utils import list_frames, natural_sort_key
from mmtfclip.evaluation.functional import compute_distance_matrix
from .inference import extract_tracklet_features, get_test_pipeline

#: The columns of a box track file, in this order.
BOX_TRACK_HEADER = ('frame', 'x', 'y', 'w', 'h')
#: Bumped when the cache's content changes, so older caches are recomputed.
CACHE_VERSION = 1


@dataclass
class GalleryTracklet:
    """A gallery tracklet found on disk.

    Attributes:
        path (str): Its folder.
        frame_paths (list[str]): Its frames in natural (temporal) order.
        camera (str, optional): Its camera folder's name; None in a flat
            gallery.
        camid (int): The 0-based camera id fed to the model.
    """
    path: str
    frame_paths: List[str]
    camera: Optional[str]
    camid: int


def _subfolders(folder: str) -> List[str]:
    with os.scandir(folder) as it:
        names = [e.name for e in it if e.is_dir()]
    return sorted(names, key=natural_sort_key)


def tracklet_frames(folder: str) -> List[str]:
    """The frame paths of a tracklet folder, in natural (temporal) order.

    Args:
        folder (str): A folder of image files.

    Returns:
        list[str]: Absolute frame paths.
    """
    if not osp.isdir(folder):
        raise FileNotFoundError(f'Tracklet folder {folder} does not exist.')
    names = list_frames(folder)
    if not names:
        raise ValueError(f'Tracklet folder {folder} holds no image '
                         '(.jpg, .png, ...).')
    return [osp.join(osp.abspath(folder), n) for n in names]


def list_gallery(root: str, num_cams: int = 0) -> List[GalleryTracklet]:
    """Find the tracklets of a gallery folder.

    Two layouts are recognised:

    - ``<root>/<tracklet>/<frames>``: a flat gallery; every tracklet gets
      camera id 0 (the camera is unknown).
    - ``<root>/<camera>/<tracklet>/<frames>``: camera folders; the cameras,
      naturally sorted by folder name, get ids 0, 1, ... (``cam2`` before
      ``cam10``), whatever their names say.

    A folder of the first level that holds images is a tracklet; one that
    holds only folders is a camera. Mixing both is an error.

    Args:
        root (str): The gallery folder.
        num_cams (int): The cameras the model's SIE knows
            (``model.backbone.num_cams``); more camera folders than that are
            an error, as their ids would not exist in the model. 0 (no SIE)
            accepts any number: the ids are then only reported.
            Defaults to 0.

    Returns:
        list[GalleryTracklet]: The tracklets, by camera then folder name.
    """
    if not osp.isdir(root):
        raise FileNotFoundError(f'Gallery folder {root} does not exist.')
    root = osp.abspath(root)
    tracklet_dirs, camera_dirs = [], []
    for name in _subfolders(root):
        folder = osp.join(root, name)
        if list_frames(folder):
            tracklet_dirs.append(name)
        elif _subfolders(folder):
            camera_dirs.append(name)
        else:
            raise ValueError(f'Gallery folder {folder} holds neither images '
                             'nor tracklet folders.')
    if tracklet_dirs and camera_dirs:
        raise ValueError(
            f'Gallery {root} mixes tracklet folders (e.g. {tracklet_dirs[0]}, '
            f'with images) and camera folders (e.g. {camera_dirs[0]}, with '
            'tracklet folders); use one layout.')
    if not tracklet_dirs and not camera_dirs:
        raise ValueError(f'Gallery folder {root} holds no tracklet folder.')
    if tracklet_dirs:
        return [
            GalleryTracklet(
                osp.join(root, n), tracklet_frames(osp.join(root, n)), None, 0)
            for n in tracklet_dirs
        ]
    if num_cams and len(camera_dirs) > num_cams:
        raise ValueError(
            f'Gallery {root} has {len(camera_dirs)} camera folders but the '
            f'model knows {num_cams} cameras (SIE, model.backbone.num_cams): '
            f'camera folder {osp.join(root, camera_dirs[num_cams])} would '
            f'get id {num_cams}. Merge camera folders or use a model '
            'trained with more cameras.')
    tracklets = []
    for camid, camera in enumerate(camera_dirs):
        cam_dir = osp.join(root, camera)
        for name in _subfolders(cam_dir):
            folder = osp.join(cam_dir, name)
            tracklets.append(
                GalleryTracklet(folder, tracklet_frames(folder), camera,
                                camid))
    return tracklets


def _number(text: str, column: str, where: str, integer: bool) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f'{where}: `{column}` is {text!r}, not a number.')
    if not np.isfinite(value) or (integer and value != int(value)):
        raise ValueError(f'{where}: `{column}` is {text!r}, expected '
                         f'{"an integer" if integer else "a finite number"}.')
    return value


def read_box_track(csv_path: str) -> List[Tuple[int, int, int, int, int, int]]:
    """Read a box track file.

    The file is a CSV with the header ``frame,x,y,w,h``: the 0-based index
    of a frame in the video and the person's box in it, in pixels (top-left
    corner, width, height; fractions are rounded). Frames must increase
    from row to row.

    Args:
        csv_path (str): The CSV file.

    Returns:
        list[tuple[int, int, int, int, int, int]]: ``(frame, x, y, w, h,
        line)`` per box, ``line`` being its 1-based line in the file (for
        later messages).

    Raises:
        ValueError: Naming the file and the row of a bad header or row.
    """
    with open(csv_path, newline='') as f:
        rows = list(csv.reader(f))
    header = tuple(c.strip().lower() for c in rows[0]) if rows else ()
    if header != BOX_TRACK_HEADER:
        raise ValueError(f'{csv_path}: the first row must be the header '
                         f'{",".join(BOX_TRACK_HEADER)}, got {rows[:1]}.')
    boxes = []
    for line, row in enumerate(rows[1:], 2):
        if not any(c.strip() for c in row):
            continue
        where = f'{csv_path} row {line}'
        if len(row) != len(BOX_TRACK_HEADER):
            raise ValueError(f'{where}: expected 5 values '
                             f'({",".join(BOX_TRACK_HEADER)}), got {row}.')
        frame = int(_number(row[0], 'frame', where, integer=True))
        x, y, w, h = (int(round(_number(v, c, where, integer=False)))
                      for v, c in zip(row[1:], BOX_TRACK_HEADER[1:]))
        if frame < 0 or w <= 0 or h <= 0:
            raise ValueError(f'{where}: frame must be >= 0 and the box '
                             f'width and height > 0, got {row}.')
        if boxes and frame <= boxes[-1][0]:
            raise ValueError(f'{where}: frame {frame} does not follow frame '
                             f'{boxes[-1][0]} of the row before; frames must '
                             'increase.')
        boxes.append((frame, x, y, w, h, line))
    if not boxes:
        raise ValueError(f'{csv_path}: no box under the header.')
    return boxes


def read_video_tracklet(video_path: str, csv_path: str) -> np.ndarray:
    """Crop a person's tracklet from a video with its box track.

    The video is read frame by frame with ``cv2.VideoCapture`` (seeking is
    unreliable for some codecs). The crops are resized to the median box
    size so that they stack; the test pipeline resizes them to the model's
    input size anyway.

    Args:
        video_path (str): The video file.
        csv_path (str): Its box track, see :func:`read_box_track`.

    Returns:
        np.ndarray: The crops, uint8 RGB ``[T, H, W, 3]``, one per row.

    Raises:
        ValueError: Naming the CSV row of a box outside its frame or of a
            frame past the end of the video.
    """
    if not osp.isfile(video_path):
        raise FileNotFoundError(f'Video {video_path} does not exist.')
    boxes = read_box_track(csv_path)
    capture = cv2.VideoCapture(video_path)
    if not capture.isOpened():
        raise ValueError(f'OpenCV cannot open the video {video_path}.')
    crops = []
    index = -1
    try:
        for frame, x, y, w, h, line in boxes:
            image = None
            while index < frame:
                ok, image = capture.read()
                if not ok:
                    raise ValueError(
                        f'{csv_path} row {line}: frame {frame} is past the '
                        f'end of {video_path}, which has {index + 1} '
                        'frames.')
                index += 1
            height, width = image.shape[:2]
            if x < 0 or y < 0 or x + w > width or y + h > height:
                raise ValueError(
                    f'{csv_path} row {line}: box x={x} y={y} w={w} h={h} '
                    f'lies outside frame {frame} ({width} x {height} '
                    'pixels).')
            crops.append(
                cv2.cvtColor(image[y:y + h, x:x + w], cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    h = int(np.median([c.shape[0] for c in crops]))
    w = int(np.median([c.shape[1] for c in crops]))
    return np.stack(
        [cv2.resize(c, (w, h), interpolation=cv2.INTER_AREA) for c in crops])


def embed_tracklets(model: nn.Module,
                    tracklets: Sequence[Union[Sequence[str], np.ndarray]],
                    camids: Optional[Sequence[int]] = None,
                    batch_size: int = 16,
                    show_progress: bool = True) -> torch.Tensor:
    """Embed many tracklets, ``batch_size`` at a time.

    Unlike one call of :func:`extract_tracklet_features`, which decodes
    every tracklet before the first forward, only one batch of decoded
    frames is held at a time, and a progress bar counts the tracklets.

    Args:
        model (nn.Module): A model from :func:`init_model`.
        tracklets (Sequence): Frame path lists or uint8 RGB arrays
            ``[T, H, W, 3]``.
        camids (Sequence[int], optional): 0-based camera per tracklet.
            Defaults to None (see :func:`extract_tracklet_features`).
        batch_size (int): Tracklets per batch. Defaults to 16.
        show_progress (bool): Show a progress bar. Defaults to True.

    Returns:
        Tensor: ``[N, D]`` float32 embeddings, in input order.
    """
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}.')
    if not len(tracklets):
        raise ValueError('No tracklet to embed.')
    bar = ProgressBar(len(tracklets)) if show_progress else None
    features = []
    for start in range(0, len(tracklets), batch_size):
        stop = min(start + batch_size, len(tracklets))
        features.append(
            extract_tracklet_features(
                model,
                tracklets[start:stop],
                None if camids is None else camids[start:stop],
                batch_size=batch_size))
        if bar is not None:
            for _ in range(stop - start):
                bar.update()
    if bar is not None:
        # The bar ends without a line break, as in mmengine's track_progress.
        bar.file.write('\n')
    return torch.cat(features)


def gallery_cache_key(checkpoint: str, model: nn.Module,
                      gallery: Sequence[GalleryTracklet]) -> dict:
    """What a gallery-embedding cache must match to be reused.

    Args:
        checkpoint (str): The checkpoint the embeddings came from; its
            absolute path, modification time and size are recorded.
        model (nn.Module): The model (its ``cfg`` gives the test pipeline).
        gallery (Sequence[GalleryTracklet]): The gallery tracklets; their
            folders, frames and camera ids are recorded.

    Returns:
        dict: A JSON-serialisable key.
    """
    stat = os.stat(checkpoint)
    return dict(
        version=CACHE_VERSION,
        checkpoint=dict(
            path=osp.abspath(checkpoint),
            mtime=stat.st_mtime,
            size=stat.st_size),
        test_pipeline=json.loads(
            json.dumps(get_test_pipeline(model.cfg), default=str)),
        tracklets=[[t.path, t.camid, t.frame_paths] for t in gallery])


def _difference(old: dict, new: dict) -> str:
    """Say in words why a cache key differs."""
    if old.get('version') != new['version']:
        return 'it was written by another version of mmtfclip'
    if old.get('checkpoint') != new['checkpoint']:
        was, now = old.get('checkpoint', {}), new['checkpoint']
        if was.get('path') != now['path']:
            return (f'it was computed with the checkpoint {was.get("path")}, '
                    f'not {now["path"]}')
        return (f'the checkpoint {now["path"]} changed since (modification '
                'time or size differ)')
    if old.get('test_pipeline') != new['test_pipeline']:
        return 'the config\'s test pipeline differs'
    return 'the gallery tracklets (folders, frames or cameras) differ'


def load_gallery_cache(path: str, key: dict) -> Optional[torch.Tensor]:
    """Read cached gallery embeddings if they match ``key``.

    Args:
        path (str): The cache file (``.npz``, read without pickle).
        key (dict): From :func:`gallery_cache_key`.

    Returns:
        Tensor | None: The embeddings, or None (with a logged reason) when
        the file is missing or stale.
    """
    if not osp.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            old = json.loads(str(data['key']))
            features = torch.from_numpy(data['features'])
    except (OSError, KeyError, ValueError) as err:
        print_log(
            f'Gallery cache {path} is unreadable ({err}); recomputing it.',
            logger='current')
        return None
    if old != key:
        print_log(
            f'Gallery cache {path} is stale: {_difference(old, key)}; '
            'recomputing it.',
            logger='current')
        return None
    print_log(
        f'Gallery embeddings read from the cache {path}.', logger='current')
    return features


def save_gallery_cache(path: str, key: dict, features: torch.Tensor) -> None:
    """Write gallery embeddings with the key they are valid for.

    Args:
        path (str): The cache file (``.npz``).
        key (dict): From :func:`gallery_cache_key`.
        features (Tensor): ``[N, D]`` embeddings.
    """
    mkdir_or_exist(osp.dirname(osp.abspath(path)))
    np.savez(
        path,
        features=features.numpy().astype(np.float32),
        key=np.array(json.dumps(key)))
    print_log(f'Gallery embeddings cached in {path}.', logger='current')


def rank_gallery(query: torch.Tensor,
                 gallery: torch.Tensor,
                 dist_metric: str = 'euclidean',
                 feat_norm: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """Rank gallery embeddings by their distance to a query embedding.

    Args:
        query (Tensor): ``[D]`` query embedding.
        gallery (Tensor): ``[N, D]`` gallery embeddings.
        dist_metric (str): ``'euclidean'`` (squared) or ``'cosine'``, as in
            ``ReIDMetric``. Defaults to ``'euclidean'``.
        feat_norm (bool): L2-normalise first, as ``ReIDMetric`` does by
            default. Defaults to True.

    Returns:
        tuple[np.ndarray, np.ndarray]: Gallery indices best first, and their
        distances in that order.
    """
    query, gallery = query.float().reshape(1, -1), gallery.float()
    if feat_norm:
        query, gallery = F.normalize(query, dim=1), F.normalize(gallery, dim=1)
    dist = compute_distance_matrix(query, gallery, dist_metric).numpy()[0]
    order = np.argsort(dist, kind='stable')
    return order, dist[order]
