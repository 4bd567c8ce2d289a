# Copyright (c) mmtfclip contributors. All rights reserved.
import json
import os.path as osp
from typing import List, Mapping, Optional, Sequence, Tuple, Union

import cv2
import mmcv
import numpy as np
from mmengine.dist import master_only
from mmengine.utils import mkdir_or_exist
from mmengine.visualization import Visualizer

from mmtfclip.registry import VISUALIZERS

#: A tracklet to draw: its frame paths in temporal order, or its frames as
#: a uint8 RGB array ``[T, H, W, 3]``.
TrackletType = Union[Sequence[str], np.ndarray]

GREEN = (40, 170, 60)  # RGB: a true match
RED = (210, 40, 40)  # RGB: a wrong match
GREY = (128, 128, 128)  # RGB: identity unknown
BLACK = (0, 0, 0)  # RGB: the query


@VISUALIZERS.register_module()
class ReIDRankingVisualizer(Visualizer):
    """Draws ranking pictures: a query tracklet above its top-k gallery.

    Each tracklet is a strip of ``num_frames`` evenly spaced frames. Gallery
    strips are framed green for a true match, red for a wrong one and grey
    when the identities are unknown (e.g. one's own footage), and labelled
    with their rank, distance and an optional text (identity, camera,
    folder). The picture goes to a file, to a window, or to the vis backends
    (``add_image``), as mmpretrain's ``UniversalVisualizer`` does.

    Args:
        name (str): Name of the instance. Defaults to ``'visualizer'``.
        num_frames (int): Frames shown per tracklet. Defaults to 4.
        frame_size (tuple[int, int]): Size of each shown frame as (h, w).
            Defaults to (128, 64).
        **kwargs: Passed to :class:`mmengine.visualization.Visualizer`
            (``vis_backends``, ``save_dir``, ...).
    """

    def __init__(self,
                 name: str = 'visualizer',
                 num_frames: int = 4,
                 frame_size: Tuple[int, int] = (128, 64),
                 **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        if num_frames < 1:
            raise ValueError(f'num_frames must be >= 1, got {num_frames}.')
        self.num_frames = num_frames
        self.frame_size = tuple(frame_size)

    def _strip(self, tracklet: TrackletType) -> np.ndarray:
        """``num_frames`` evenly spaced frames of a tracklet, side by side."""
        if len(tracklet) == 0:
            raise ValueError('A tracklet to draw has no frames.')
        h, w = self.frame_size
        idx = np.linspace(0,
                          len(tracklet) - 1,
                          self.num_frames).round().astype(int)
        frames = []
        for i in idx:
            if isinstance(tracklet, np.ndarray):
                img = tracklet[i]
            else:
                img = mmcv.imread(tracklet[i], channel_order='rgb')
                if img is None:
                    raise FileNotFoundError(
                        f'Cannot read frame {tracklet[i]} to draw it.')
            frames.append(
                cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA))
        return np.concatenate(frames, axis=1)

    @staticmethod
    def _labelled(strip: np.ndarray, colour: Tuple[int, int, int],
                  text: str) -> np.ndarray:
        """Frame ``strip`` in ``colour`` and put ``text`` (one or more
        lines) on a band above."""
        border = 3
        framed = cv2.copyMakeBorder(
            strip,
            border,
            border,
            border,
            border,
            cv2.BORDER_CONSTANT,
            value=colour)
        lines = text.split('\n')
        band = np.full((4 + 14 * len(lines), framed.shape[1], 3), 255,
                       np.uint8)
        for i, line in enumerate(lines):
            cv2.putText(band, line, (3, 13 + 14 * i), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4, BLACK, 1, cv2.LINE_AA)
        return np.concatenate([band, framed], axis=0)

    def draw_ranking(
            self,
            query: TrackletType,
            gallery: Sequence[TrackletType],
            distances: Sequence[float],
            matches: Optional[Sequence[Optional[bool]]] = None,
            query_label: str = 'query',
            gallery_labels: Optional[Sequence[str]] = None) -> np.ndarray:
        """Compose the ranking picture and make it the current image.

        Args:
            query (Sequence[str] | np.ndarray): The query's frames.
            gallery (Sequence): The frames of each ranked gallery tracklet,
                best first.
            distances (Sequence[float]): The distance of each gallery
                tracklet to the query.
            matches (Sequence[bool | None], optional): Whether each gallery
                tracklet has the query's identity; None where unknown.
                Defaults to None (all unknown).
            query_label (str): Text above the query; ``'\\n'`` breaks
                lines. Defaults to ``'query'``.
            gallery_labels (Sequence[str], optional): Extra text for each
                gallery tracklet. Defaults to None.

        Returns:
            np.ndarray: The picture, RGB uint8 ``[H, W, 3]``.
        """
        for what, values in (('distances', distances),
                             ('match flags', matches), ('labels',
                                                        gallery_labels)):
            if values is not None and len(values) != len(gallery):
                raise ValueError(f'{len(gallery)} gallery tracklets but '
                                 f'{len(values)} {what}.')
        rows = [self._labelled(self._strip(query), BLACK, query_label)]
        for rank, (frames, dist) in enumerate(zip(gallery, distances), 1):
            match = None if matches is None else matches[rank - 1]
            colour = GREY if match is None else (GREEN if match else RED)
            text = f'#{rank}  d={dist:.3f}'
            if gallery_labels is not None:
                text += f'  {gallery_labels[rank - 1]}'
            rows.append(self._labelled(self._strip(frames), colour, text))
        width = max(r.shape[1] for r in rows)
        rows = [
            np.pad(
                r, ((0, 0), (0, width - r.shape[1]), (0, 0)),
                constant_values=255) for r in rows
        ]
        # The query on top, a gap, then the gallery best first.
        gap = np.full((10, width, 3), 255, np.uint8)
        picture = np.concatenate([rows[0], gap] + rows[1:], axis=0)
        self.set_image(picture)
        return picture

    @master_only
    def visualize_ranking(self,
                          query: TrackletType,
                          gallery: Sequence[TrackletType],
                          distances: Sequence[float],
                          matches: Optional[Sequence[Optional[bool]]] = None,
                          query_label: str = 'query',
                          gallery_labels: Optional[Sequence[str]] = None,
                          show: bool = False,
                          wait_time: float = 0,
                          out_file: Optional[str] = None,
                          name: str = 'ranking',
                          step: int = 0) -> np.ndarray:
        """Draw a ranking and save, show or record it.

        Args:
            query, gallery, distances, matches, query_label, gallery_labels:
                As in :meth:`draw_ranking`.
            show (bool): Show the picture in a window. Defaults to False.
            wait_time (float): How long to show it (s); 0 waits for a key.
                Defaults to 0.
            out_file (str, optional): Write the picture to this file (its
                folder is created); the vis backends are then left alone,
                as in mmpretrain. Defaults to None.
            name (str): The picture's name for the vis backends.
                Defaults to ``'ranking'``.
            step (int): The step recorded with it. Defaults to 0.

        Returns:
            np.ndarray: The picture, RGB uint8.
        """
        picture = self.draw_ranking(query, gallery, distances, matches,
                                    query_label, gallery_labels)
        if show:
            self.show(picture, win_name=name, wait_time=wait_time)
        if out_file is not None:
            mkdir_or_exist(osp.dirname(osp.abspath(out_file)))
            mmcv.imwrite(mmcv.rgb2bgr(picture), out_file)
        else:
            self.add_image(name, picture, step)
        return picture

    @master_only
    def visualize_dump(self,
                       dump: Mapping[str, np.ndarray],
                       query_pos: int,
                       topk: int = 10,
                       **kwargs) -> np.ndarray:
        """Draw the ranking of one query of a ``ReIDMetric`` dump.

        The ranking is the metric's: the dump's distances (re-ranked if the
        test was), its gallery (with ``query_in_gallery`` the queries are
        in it), and the same-id same-camera gallery entries, the query
        itself included, left out as the evaluation discards them; their
        number is written above the query.

        Args:
            dump (Mapping[str, np.ndarray]): The arrays of the ``.npz``
                written by ``ReIDMetric(dump_path=...)`` (``tools/test.py
                --dump``); it needs ``frame_paths``.
            query_pos (int): Which query, as a position in ``query_index``.
            topk (int): How many gallery tracklets to show. Defaults to 10.
            **kwargs: Passed to :meth:`visualize_ranking` (``out_file``,
                ``show``, ``name``, ``step``).

        Returns:
            np.ndarray: The picture, RGB uint8.
        """
        if 'frame_paths' not in dump:
            raise KeyError('The dump has no frame paths; it was written from '
                           'samples without `frame_paths` in their metainfo.')
        num_query = len(dump['query_index'])
        if not 0 <= query_pos < num_query:
            raise IndexError(f'Query {query_pos} out of range: the dump has '
                             f'{num_query} queries.')
        offsets, paths = dump['frame_path_offsets'], dump['frame_paths']
        pids, camids = dump['pids'], dump['camids']

        def frames(i: int) -> List[str]:
            return [str(p) for p in paths[offsets[i]:offsets[i + 1]]]

        q = int(dump['query_index'][query_pos])
        gallery_index = dump['gallery_index']
        dist = dump['distmat'][query_pos]
        order = np.argsort(dist, kind='stable')
        ranked = gallery_index[order]
        discarded = (pids[ranked] == pids[q]) & (camids[ranked] == camids[q])
        kept = order[~discarded][:topk]
        chosen = gallery_index[kept]
        protocol = json.loads(str(
            dump['protocol'])) if 'protocol' in (dump) else {}
        rule = {
            True: 'queries join gallery',
            False: 'gallery split only'
        }.get(protocol.get('query_in_gallery'), 'protocol not recorded')
        return self.visualize_ranking(
            frames(q), [frames(g) for g in chosen],
            [float(d) for d in dist[kept]],
            matches=[bool(pids[g] == pids[q]) for g in chosen],
            query_label=(f'query id {pids[q]} cam {camids[q] + 1}\n'
                         f'{rule}; {int(discarded.sum())} same-id\n'
                         'same-cam entries discarded'),
            gallery_labels=[
                f'id {pids[g]} cam {camids[g] + 1}' for g in chosen
            ],
            **kwargs)

    @master_only
    def visualize_dump_rankings(
            self,
            dump: Mapping[str, np.ndarray],
            out_dir: str,
            topk: int = 10,
            num: int = 20,
            queries: Optional[Sequence[int]] = None) -> List[str]:
        """Write the ranking pictures of several queries of a dump.

        Args:
            dump (Mapping[str, np.ndarray]): As in :meth:`visualize_dump`.
            out_dir (str): The folder of the pictures.
            topk (int): Gallery tracklets per picture. Defaults to 10.
            num (int): Without ``queries``, this many queries evenly spaced
                over the query set. Defaults to 20.
            queries (Sequence[int], optional): Positions of the queries to
                draw (0-based, in ``query_index`` order). Defaults to None.

        Returns:
            list[str]: The written files,
            ``query{pos:05d}_id{pid}_cam{cam}.png`` (cameras 1-based).
        """
        num_query = len(dump['query_index'])
        if queries is None:
            if num < 1:
                raise ValueError(f'num must be >= 1, got {num}.')
            queries = np.unique(
                np.linspace(0, num_query - 1,
                            min(num, num_query)).round().astype(int))
        bad = [int(p) for p in queries if not 0 <= p < num_query]
        if bad:
            raise IndexError(f'Queries {bad} out of range: the dump has '
                             f'{num_query} queries.')
        files = []
        for pos in queries:
            q = int(dump['query_index'][pos])
            out_file = osp.join(
                out_dir, f'query{int(pos):05d}_id{dump["pids"][q]}_'
                f'cam{dump["camids"][q] + 1}.png')
            self.visualize_dump(dump, int(pos), topk, out_file=out_file)
            files.append(out_file)
        return files
