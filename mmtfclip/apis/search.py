# Copyright (c) mmtfclip contributors. All rights reserved.
"""Searching one's own footage: gallery and query folders, a query from a
video and a box track, embedding in batches, a persistent gallery index,
results a program can read."""
import csv
import hashlib
import io
import json
import os
import os.path as osp
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn as nn
from mmengine.config import ConfigDict
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from mmtfclip.datasets.utils import list_frames, natural_sort_key, read_text
from mmtfclip.fileio import atomic_write_bytes, file_sha256
from .gallery_index import GalleryIndex, config_digest
from .inference import extract_tracklet_features, get_test_pipeline

#: The columns of a box track file, in this order.
BOX_TRACK_HEADER = ('frame', 'x', 'y', 'w', 'h')
#: The columns of a search result CSV, in this order.
RESULT_HEADER = ('query', 'rank', 'tracklet', 'camera', 'camid', 'distance')


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
    # Strict UTF-8 without a byte-order mark, as the annotation files.
    rows = list(csv.reader(io.StringIO(read_text(csv_path), newline='')))
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


def embed_tracklets(
        model: nn.Module,
        tracklets: Sequence[Union[Sequence[str], np.ndarray]],
        camids: Optional[Sequence[int]] = None,
        batch_size: int = 16,
        show_progress: bool = True,
        progress_bar: Optional[ProgressBar] = None) -> torch.Tensor:
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
        progress_bar (ProgressBar, optional): Advance this bar instead
            (a caller embedding in several calls). Defaults to None.

    Returns:
        Tensor: ``[N, D]`` float32 embeddings, in input order.
    """
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}.')
    if not len(tracklets):
        raise ValueError('No tracklet to embed.')
    bar = progress_bar
    if bar is None and show_progress:
        bar = ProgressBar(len(tracklets))
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
    if bar is not None and progress_bar is None:
        # The bar ends without a line break, as in mmengine's track_progress.
        bar.file.write('\n')
    return torch.cat(features)


def embedding_settings(model: nn.Module) -> dict:
    """Every setting of the config that changes a test embedding.

    Args:
        model (nn.Module): A model from :func:`init_model` (``model.cfg`` is
            the resolved config, ``--cfg-options`` merged).

    Returns:
        dict: The model config and the test pipeline, as plain JSON data.
    """
    cfg = model.cfg
    model_cfg = cfg.model.to_dict() if isinstance(
        cfg.model, ConfigDict) else dict(cfg.model)
    return json.loads(
        json.dumps(
            dict(model=model_cfg, test_pipeline=get_test_pipeline(cfg)),
            sort_keys=True,
            default=str))


def embedding_key(model: nn.Module, checkpoint: str) -> Tuple[dict, dict]:
    """What gallery embeddings must match to be reused.

    Args:
        model (nn.Module): The model, see :func:`embedding_settings`.
        checkpoint (str): Its checkpoint file; its content is hashed, so a
            retrained or replaced checkpoint never reuses embeddings, and
            a moved or copied one does.

    Returns:
        tuple[dict, dict]: The key (the SHA-256 of the settings and of the
        checkpoint) and the settings themselves.
    """
    settings = embedding_settings(model)
    key = dict(
        config_sha256=config_digest(settings),
        checkpoint_sha256=file_sha256(checkpoint))
    return key, dict(settings, checkpoint=osp.abspath(checkpoint))


def tracklet_record(tracklet: GalleryTracklet) -> dict:
    """A gallery tracklet as the index records it: its folder, camera and a
    digest of its frame names (added, removed or renamed frames show)."""
    names = '\n'.join(osp.basename(p) for p in tracklet.frame_paths)
    return dict(
        tracklet=tracklet.path,
        camera=tracklet.camera,
        camid=tracklet.camid,
        num_frames=len(tracklet.frame_paths),
        frames_sha1=hashlib.sha1(names.encode()).hexdigest())


def _gallery_difference(index: GalleryIndex,
                        gallery: Sequence[GalleryTracklet]) -> str:
    """Why an index no longer describes (a subset of) the gallery, or ''."""
    current = {t.path: tracklet_record(t) for t in gallery}
    changed, removed = [], []
    for record in index.records:
        now = current.get(record['tracklet'])
        if now is None:
            removed.append(record['tracklet'])
        elif now != record:
            changed.append(record['tracklet'])
    for what, paths in (('changed (frames or camera id)', changed),
                        ('no longer in the gallery', removed)):
        if paths:
            more = f' and {len(paths) - 1} more' if len(paths) > 1 else ''
            return f'tracklet {paths[0]}{more} {what}'
    return ''


def sync_gallery_index(root: Optional[str],
                       model: nn.Module,
                       checkpoint: str,
                       gallery: Sequence[GalleryTracklet],
                       batch_size: int = 16,
                       dist_metric: str = 'euclidean',
                       feat_norm: bool = True,
                       faiss_factory: Optional[str] = None,
                       rebuild: bool = False,
                       shard_rows: int = 65536,
                       show_progress: bool = True) -> GalleryIndex:
    """The gallery index of ``gallery``, reused, extended or (re)built.

    An index in ``root`` built with the same model settings and checkpoint
    (:func:`embedding_key`) is read and checked file by file. Tracklets
    of the gallery it does not hold yet are embedded and appended, one shard
    at a time (an interrupted run keeps the shards it wrote). It is rebuilt,
    with the reason logged, when it is missing, damaged, truncated, built
    with another model, or holds a tracklet that changed or left the
    gallery.

    Args:
        root (str, optional): The index folder; None embeds the gallery
            into an index kept in memory.
        model (nn.Module): A model from :func:`init_model`.
        checkpoint (str): Its checkpoint file.
        gallery (Sequence[GalleryTracklet]): From :func:`list_gallery`.
        batch_size (int): Tracklets per forward. Defaults to 16.
        dist_metric (str): Search distance, as ``ReIDMetric``'s.
            Defaults to ``'euclidean'``.
        feat_norm (bool): L2-normalise before comparing. Defaults to True.
        faiss_factory (str, optional): Also build (or read) a faiss index
            with this factory string (see :meth:`GalleryIndex.build_faiss`)
            before extending it, so that it is extended rather than
            rebuilt. Defaults to None.
        rebuild (bool): Ignore an existing index. Defaults to False.
        shard_rows (int): Rows per shard. Defaults to 65536.
        show_progress (bool): Progress bar while embedding.
            Defaults to True.

    Returns:
        GalleryIndex: Holding every gallery tracklet.
    """
    key, settings = embedding_key(model, checkpoint)
    index = None
    if root is not None:
        GalleryIndex.prepare_root(root)
        if rebuild:
            reason = 'a rebuild was asked for'
        else:
            index, reason = GalleryIndex.load(root, key, dist_metric,
                                              feat_norm, settings)
        if index is not None:
            reason = _gallery_difference(index, gallery)
            if reason:
                index = None
        if index is None:
            print_log(
                f'Gallery index {root}: {reason}; building it.',
                logger='current')
    if index is None:
        index = GalleryIndex(root, key, settings, dist_metric, feat_norm,
                             shard_rows)
    if faiss_factory is not None and index.num_rows:
        index.build_faiss(faiss_factory)
    known = {r['tracklet'] for r in index.records}
    new = [t for t in gallery if t.path not in known]
    if root is not None and index.num_rows:
        print_log(
            f'Gallery index {root}: {index.num_rows} tracklets read, '
            f'{len(new)} new to embed.',
            logger='current')
    bar = ProgressBar(len(new)) if show_progress and new else None
    for start in range(0, len(new), shard_rows):
        part = new[start:start + shard_rows]
        features = embed_tracklets(
            model, [t.frame_paths for t in part], [t.camid for t in part],
            batch_size,
            show_progress=False,
            progress_bar=bar)
        index.add(features, [tracklet_record(t) for t in part])
    if bar is not None:
        bar.file.write('\n')
    if faiss_factory is not None and not index.has_faiss:
        index.build_faiss(faiss_factory)
    return index


def list_query_tracklets(path: str) -> List[Tuple[str, List[str]]]:
    """The query tracklets of a folder: itself if it holds images, else
    each of its sub-folders (naturally sorted).

    Args:
        path (str): A tracklet folder, or a folder of tracklet folders.

    Returns:
        list[tuple[str, list[str]]]: ``(folder, frame paths)`` per query.
    """
    if not osp.isdir(path):
        raise FileNotFoundError(f'Query folder {path} does not exist.')
    if list_frames(path):
        return [(osp.abspath(path), tracklet_frames(path))]
    folders = [osp.join(osp.abspath(path), n) for n in _subfolders(path)]
    if not folders:
        raise ValueError(f'Query folder {path} holds neither images nor '
                         'tracklet folders.')
    nested = [f for f in folders if not list_frames(f)]
    if nested:
        raise ValueError(
            f'Query folder {path}: {nested[0]} holds no image; a folder of '
            'queries holds one folder of frames per query (camera folders '
            'are not read for queries: give --query-camid).')
    return [(f, tracklet_frames(f)) for f in folders]


def search_results(query_names: Sequence[str], query_camids: Sequence[int],
                   index: GalleryIndex, indices: np.ndarray,
                   distances: np.ndarray) -> List[dict]:
    """The rankings as plain data, one dict per query.

    Args:
        query_names (Sequence[str]): Each query's name (e.g. its folder).
        query_camids (Sequence[int]): Each query's camera id.
        index (GalleryIndex): The searched index.
        indices (np.ndarray): ``[Q, k]`` rows from
            :meth:`GalleryIndex.search`.
        distances (np.ndarray): ``[Q, k]`` their distances.

    Returns:
        list[dict]: ``query``, ``query_camid`` and ``results``, a list of
        ``rank`` (1-based), ``tracklet``, ``camera``, ``camid`` and
        ``distance``; rows an approximate search did not fill are left out.
    """
    out = []
    for name, camid, rows, dists in zip(query_names, query_camids, indices,
                                        distances):
        results = []
        for rank, (row, dist) in enumerate(zip(rows, dists), 1):
            if row < 0:
                continue
            record = index.records[int(row)]
            results.append(
                dict(
                    rank=rank,
                    tracklet=record['tracklet'],
                    camera=record['camera'],
                    camid=record['camid'],
                    distance=float(dist)))
        out.append(dict(query=name, query_camid=int(camid), results=results))
    return out


def write_search_results(results: Sequence[dict],
                         csv_path: str,
                         json_path: str,
                         meta: Optional[dict] = None) -> None:
    """Write rankings as CSV (one row per query and rank) and JSON.

    Both files are written atomically. The CSV's columns are
    :data:`RESULT_HEADER`; the camera of a flat gallery is empty. The JSON
    holds ``meta`` (what was searched, how) and ``queries``, the
    :func:`search_results` list.

    Args:
        results (Sequence[dict]): From :func:`search_results`.
        csv_path (str): The CSV file.
        json_path (str): The JSON file.
        meta (dict, optional): Recorded in the JSON. Defaults to None.
    """
    text = io.StringIO()
    writer = csv.writer(text, lineterminator='\n')
    writer.writerow(RESULT_HEADER)
    for query in results:
        for r in query['results']:
            writer.writerow([
                query['query'], r['rank'], r['tracklet'], r['camera'] or '',
                r['camid'], f'{r["distance"]:.6f}'
            ])
    atomic_write_bytes(text.getvalue().encode(), csv_path)
    atomic_write_bytes(
        json.dumps(dict(meta=meta or {}, queries=list(results)),
                   indent=1).encode() + b'\n', json_path)
