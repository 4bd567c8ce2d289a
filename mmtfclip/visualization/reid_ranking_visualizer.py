# Copyright (c) mmtfclip contributors. All rights reserved.
import json
import math
import os.path as osp
import re
from typing import List, Mapping, Optional, Sequence, Tuple, Union

import cv2
import mmcv
import numpy as np
from mmengine.dist import master_only
from mmengine.utils import mkdir_or_exist
from mmengine.visualization import Visualizer

from mmtfclip.evaluation.functional import (evaluate_rank_per_query,
                                            valid_gallery_mask)
from mmtfclip.registry import VISUALIZERS

#: A tracklet to draw: its frame paths in temporal order, or its frames as
#: a uint8 RGB array ``[T, H, W, 3]``.
TrackletType = Union[Sequence[str], np.ndarray]

GREEN = (40, 170, 60)  # RGB: a true match
RED = (210, 40, 40)  # RGB: a wrong match
GREY = (128, 128, 128)  # RGB: identity unknown
BLACK = (0, 0, 0)  # RGB: the query

FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_SCALE = 0.4
LINE_HEIGHT = 14  # px per text line
BORDER = 3  # px of the coloured frame around a strip
MARGIN = 3  # px between text and the cell's edges
GAP = 10  # px between the query and the gallery
CELL_GAP = 4  # px between gallery cells side by side
MAX_LINES = 4  # lines a label may take; the rest is shortened
MAX_QUERY_LINES = 8  # the query's header says more
LAYOUTS = ('grid', 'row')
ORDERS = ('even', 'worst', 'best')


def text_width(text: str) -> int:
    """Width in pixels of one line as the visualizer draws it."""
    return cv2.getTextSize(text, FONT, FONT_SCALE, 1)[0][0]


def shorten_middle(text: str, width: int) -> str:
    """``text`` with its middle replaced by ``...`` until it fits ``width``
    pixels (a path keeps its start and its end)."""
    if text_width(text) <= width:
        return text
    low, high = 0, len(text)  # characters kept
    while low < high:
        mid = (low + high + 1) // 2
        head, tail = mid - mid // 2, mid // 2
        candidate = text[:head] + '...' + (text[-tail:] if tail else '')
        if text_width(candidate) <= width:
            low = mid
        else:
            high = mid - 1
    head, tail = low - low // 2, low // 2
    return text[:head] + '...' + (text[-tail:] if tail else '')


def fit_text(text: str, width: int, max_lines: int = MAX_LINES) -> List[str]:
    """Break ``text`` into lines of at most ``width`` pixels.

    Lines break at ``\\n``, then after spaces and after the separators of
    names (``/``, ``_``, ``-``); a piece still too wide, or what is left
    after ``max_lines`` lines, is shortened in the middle. No line is ever
    cut at the edge.

    Args:
        text (str): The label.
        width (int): The room in pixels.
        max_lines (int): At most this many lines. Defaults to 4.

    Returns:
        list[str]: The lines.
    """
    lines: List[str] = []
    for paragraph in text.split('\n'):
        line = ''
        for piece in re.split(r'(?<=[\s/_\-])', paragraph):
            if text_width((line + piece).rstrip()) <= width:
                line += piece
                continue
            if line.strip():
                lines.append(line.rstrip())
            line = shorten_middle(piece.lstrip(), width)
        lines.append(line.rstrip())
    if len(lines) > max_lines:
        rest = ' '.join(lines[max_lines - 1:])
        lines = lines[:max_lines - 1] + [shorten_middle(rest, width)]
    return lines


def query_average_precisions(dump: Mapping[str, np.ndarray]) -> np.ndarray:
    """The average precision of each query of a ``ReIDMetric`` dump.

    Each query's AP is the one the metric averaged
    (:func:`mmtfclip.evaluation.functional.evaluate_rank_per_query`, the
    same counting and the same-id same-camera rule); a dump written by
    ``ReIDMetric`` carries it as ``query_ap`` already. This is the one place
    the pictures get it from.

    Args:
        dump (Mapping[str, np.ndarray]): ``pids``, ``camids``,
            ``query_index``, ``gallery_index`` and ``distmat``.

    Returns:
        np.ndarray: ``[num_query]`` float64 APs in [0, 1]; NaN for a query
        without a true match (the evaluation leaves it out).
    """
    pids, camids = dump['pids'], dump['camids']
    q, g = dump['query_index'], dump['gallery_index']
    return evaluate_rank_per_query(dump['distmat'], pids[q], pids[g],
                                   camids[q], camids[g]).ap


def choose_queries(aps: np.ndarray, num: int, order: str) -> np.ndarray:
    """Which queries to draw, in drawing order.

    Args:
        aps (np.ndarray): Per-query AP (NaN: no true match).
        num (int): How many.
        order (str): ``'even'``: evenly spaced over the query set;
            ``'worst'``: lowest AP first; ``'best'``: highest AP first
            (ties in query order; queries without a true match last).

    Returns:
        np.ndarray: Query positions.
    """
    if order not in ORDERS:
        raise ValueError(f'order must be one of {ORDERS}, got {order!r}.')
    if num < 1:
        raise ValueError(f'num must be >= 1, got {num}.')
    num_query = len(aps)
    if order == 'even':
        return np.unique(
            np.linspace(0, num_query - 1, min(num,
                                              num_query)).round().astype(int))
    known = np.flatnonzero(~np.isnan(aps))
    unknown = np.flatnonzero(np.isnan(aps))
    key = aps[known] if order == 'worst' else -aps[known]
    ranked = known[np.argsort(key, kind='stable')]
    return np.concatenate([ranked, unknown])[:num]


@VISUALIZERS.register_module()
class ReIDRankingVisualizer(Visualizer):
    """Draws ranking pictures: a query tracklet and its top-k gallery.

    Each tracklet is a strip of ``num_frames`` evenly spaced frames. Gallery
    strips are framed green for a true match, red for a wrong one and grey
    when the identities are unknown (e.g. one's own footage), and labelled
    with their rank, distance and an optional text (identity, camera,
    folder). Labels wrap and long names are shortened in the middle, never
    cut at the edge. Two layouts:

    - ``'grid'``: the query on top (its label across the picture), the
      gallery below in rows of ``columns`` strips, best first.
    - ``'row'``: the query, then the gallery, in one row, as torchreid's
      ``visrank`` draws a ranking.

    The picture goes to a file, to a window, or to the vis backends
    (``add_image``), as mmpretrain's ``UniversalVisualizer`` does.

    Args:
        name (str): Name of the instance. Defaults to ``'visualizer'``.
        num_frames (int): Frames shown per tracklet. Defaults to 4.
        frame_size (tuple[int, int]): Size of each shown frame as (h, w).
            Defaults to (128, 64).
        layout (str): ``'grid'`` or ``'row'``. Defaults to ``'grid'``.
        columns (int): Gallery strips per row of the grid. Defaults to 5.
        **kwargs: Passed to :class:`mmengine.visualization.Visualizer`
            (``vis_backends``, ``save_dir``, ...).
    """

    def __init__(self,
                 name: str = 'visualizer',
                 num_frames: int = 4,
                 frame_size: Tuple[int, int] = (128, 64),
                 layout: str = 'grid',
                 columns: int = 5,
                 **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        if num_frames < 1:
            raise ValueError(f'num_frames must be >= 1, got {num_frames}.')
        if layout not in LAYOUTS:
            raise ValueError(f'layout must be one of {LAYOUTS}, got '
                             f'{layout!r}.')
        if columns < 1:
            raise ValueError(f'columns must be >= 1, got {columns}.')
        self.num_frames = num_frames
        self.frame_size = tuple(frame_size)
        self.layout = layout
        self.columns = columns

    @property
    def cell_width(self) -> int:
        """Width in pixels of one framed tracklet strip."""
        return self.num_frames * self.frame_size[1] + 2 * BORDER

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
    def _band(lines: Sequence[str], width: int, num_lines: int) -> np.ndarray:
        """A white band ``width`` wide with ``num_lines`` lines of room."""
        band = np.full((4 + LINE_HEIGHT * num_lines, width, 3), 255, np.uint8)
        for i, line in enumerate(lines):
            cv2.putText(band, line, (MARGIN, 13 + LINE_HEIGHT * i), FONT,
                        FONT_SCALE, BLACK, 1, cv2.LINE_AA)
        return band

    def _cell(self,
              strip: np.ndarray,
              colour: Tuple[int, int, int],
              lines: Sequence[str],
              num_lines: int,
              band_width: Optional[int] = None) -> np.ndarray:
        """``strip`` framed in ``colour`` under a band of text."""
        framed = cv2.copyMakeBorder(
            strip,
            BORDER,
            BORDER,
            BORDER,
            BORDER,
            cv2.BORDER_CONSTANT,
            value=colour)
        width = band_width or framed.shape[1]
        framed = np.pad(
            framed, ((0, 0), (0, width - framed.shape[1]), (0, 0)),
            constant_values=255)
        return np.concatenate([self._band(lines, width, num_lines), framed],
                              axis=0)

    @staticmethod
    def _side_by_side(cells: Sequence[np.ndarray], gap: int) -> np.ndarray:
        space = np.full((cells[0].shape[0], gap, 3), 255, np.uint8)
        parts = []
        for i, cell in enumerate(cells):
            parts.extend([space, cell] if i else [cell])
        return np.concatenate(parts, axis=1)

    @staticmethod
    def _stack(rows: Sequence[np.ndarray], gaps: Sequence[int]) -> np.ndarray:
        width = max(r.shape[1] for r in rows)
        parts = []
        for i, row in enumerate(rows):
            if i:
                parts.append(np.full((gaps[i - 1], width, 3), 255, np.uint8))
            parts.append(
                np.pad(
                    row, ((0, 0), (0, width - row.shape[1]), (0, 0)),
                    constant_values=255))
        return np.concatenate(parts, axis=0)

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
        room = self.cell_width - 2 * MARGIN
        texts = []
        for rank, dist in enumerate(distances, 1):
            text = f'#{rank}  d={dist:.3f}'
            if gallery_labels is not None:
                text += f'  {gallery_labels[rank - 1]}'
            texts.append(fit_text(text, room))
        query_lines = fit_text(query_label, room, MAX_QUERY_LINES)
        cells = []
        per_row = len(gallery) if self.layout == 'row' else self.columns
        for start in range(0, len(gallery), per_row):
            stop = min(start + per_row, len(gallery))
            num_lines = max(len(t) for t in texts[start:stop])
            if self.layout == 'row':
                num_lines = max(num_lines, len(query_lines))
            row = []
            for k in range(start, stop):
                match = None if matches is None else matches[k]
                colour = GREY if match is None else (GREEN if match else RED)
                row.append(
                    self._cell(
                        self._strip(gallery[k]), colour, texts[k], num_lines))
            cells.append(row)
        query_strip = self._strip(query)
        if self.layout == 'row':
            num_lines = max([len(query_lines)] + [len(t) for t in texts])
            query_cell = self._cell(query_strip, BLACK, query_lines, num_lines)
            if not cells:
                picture = query_cell
            else:
                gallery_row = self._side_by_side(cells[0], CELL_GAP)
                picture = self._side_by_side([query_cell, gallery_row], GAP)
        else:
            rows = [self._side_by_side(row, CELL_GAP) for row in cells]
            width = max([self.cell_width] + [r.shape[1] for r in rows])
            lines = fit_text(query_label, width - 2 * MARGIN, MAX_QUERY_LINES)
            query_row = self._cell(query_strip, BLACK, lines, len(lines),
                                   width)
            picture = self._stack([query_row] + rows,
                                  [GAP] + [CELL_GAP] * len(rows))
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
                       average_precision: Optional[float] = None,
                       **kwargs) -> np.ndarray:
        """Draw the ranking of one query of a ``ReIDMetric`` dump.

        The ranking is the metric's: the dump's distances (re-ranked if the
        test was), its gallery (with ``query_in_gallery`` the queries are
        in it), and the same-id same-camera gallery entries, the query
        itself included, left out as the evaluation discards them; their
        number and the query's AP are written above the query.

        Args:
            dump (Mapping[str, np.ndarray]): The arrays of the ``.npz``
                written by ``ReIDMetric(dump_path=...)`` (``tools/test.py
                --dump``); it needs ``frame_paths``.
            query_pos (int): Which query, as a position in ``query_index``.
            topk (int): How many gallery tracklets to show. Defaults to 10.
            average_precision (float, optional): The query's AP, if known
                (NaN: no true match); None computes it with
                :func:`query_average_precisions`. Defaults to None.
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

        if average_precision is None:
            row = {k: dump[k] for k in ('pids', 'camids', 'gallery_index')}
            row.update(
                query_index=dump['query_index'][query_pos:query_pos + 1],
                distmat=dump['distmat'][query_pos:query_pos + 1])
            average_precision = float(query_average_precisions(row)[0])
        q = int(dump['query_index'][query_pos])
        gallery_index = dump['gallery_index']
        dist = dump['distmat'][query_pos]
        order = np.argsort(dist, kind='stable')
        ranked = gallery_index[order]
        discarded = ~valid_gallery_mask(pids[q], pids[ranked], camids[q],
                                        camids[ranked])
        kept = order[~discarded][:topk]
        chosen = gallery_index[kept]
        protocol = json.loads(str(
            dump['protocol'])) if 'protocol' in (dump) else {}
        rule = {
            True: 'queries join gallery',
            False: 'gallery split only'
        }.get(protocol.get('query_in_gallery'), 'protocol not recorded')
        ap = ('AP n/a (no true match)' if math.isnan(average_precision) else
              f'AP {average_precision:.3f}')
        return self.visualize_ranking(
            frames(q), [frames(g) for g in chosen],
            [float(d) for d in dist[kept]],
            matches=[bool(pids[g] == pids[q]) for g in chosen],
            query_label=(f'query id {pids[q]} cam {camids[q] + 1}  {ap}\n'
                         f'{rule}; {int(discarded.sum())} same-id '
                         'same-cam entries discarded'),
            gallery_labels=[
                f'id {pids[g]} cam {camids[g] + 1}' for g in chosen
            ],
            **kwargs)

    @master_only
    def visualize_dump_rankings(self,
                                dump: Mapping[str, np.ndarray],
                                out_dir: str,
                                topk: int = 10,
                                num: int = 20,
                                queries: Optional[Sequence[int]] = None,
                                order: str = 'even') -> List[str]:
        """Write the ranking pictures of several queries of a dump.

        Args:
            dump (Mapping[str, np.ndarray]): As in :meth:`visualize_dump`.
            out_dir (str): The folder of the pictures.
            topk (int): Gallery tracklets per picture. Defaults to 10.
            num (int): Without ``queries``, this many queries, chosen by
                ``order``. Defaults to 20.
            queries (Sequence[int], optional): Positions of the queries to
                draw (0-based, in ``query_index`` order), in this order.
                Defaults to None.
            order (str): Without ``queries``: ``'even'`` (evenly spaced over
                the query set), ``'worst'`` (lowest AP first, as fast-reid
                shows them) or ``'best'``; see :func:`choose_queries`.
                Defaults to ``'even'``.

        Returns:
            list[str]: The written files, in drawing order,
            ``{k:03d}_query{pos:05d}_id{pid}_cam{cam}.png`` (k the 1-based
            drawing order, cameras 1-based).
        """
        num_query = len(dump['query_index'])
        aps = query_average_precisions(dump)
        if queries is None:
            queries = choose_queries(aps, num, order)
        bad = [int(p) for p in queries if not 0 <= p < num_query]
        if bad:
            raise IndexError(f'Queries {bad} out of range: the dump has '
                             f'{num_query} queries.')
        files = []
        for k, pos in enumerate(queries, 1):
            q = int(dump['query_index'][pos])
            out_file = osp.join(
                out_dir, f'{k:03d}_query{int(pos):05d}_id{dump["pids"][q]}_'
                f'cam{dump["camids"][q] + 1}.png')
            self.visualize_dump(
                dump, int(pos), topk, float(aps[pos]), out_file=out_file)
            files.append(out_file)
        return files
