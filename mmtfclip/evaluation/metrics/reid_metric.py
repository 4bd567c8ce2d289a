# Copyright (c) mmtfclip contributors. All rights reserved.
import json
import os.path as osp
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement
from mmengine.utils import mkdir_or_exist

from mmtfclip.registry import METRICS
from ..functional import (compute_distance_matrix, count_valid_matches,
                          evaluate_rank, re_ranking)
from ..functional.distance import DISTANCE_METRICS

SPLITS = ('query', 'gallery')


def pack_frame_paths(tracklets: Sequence[Sequence[str]]) -> dict:
    """The frame paths of tracklets as two flat arrays for an ``.npz``.

    Args:
        tracklets (Sequence[Sequence[str]]): Each tracklet's frame paths.

    Returns:
        dict: ``frame_paths`` (all paths concatenated, str) and
        ``frame_path_offsets`` (int64, ``len(tracklets) + 1``): tracklet
        ``i`` is ``frame_paths[offsets[i]:offsets[i + 1]]``.
    """
    counts = [len(paths) for paths in tracklets]
    return dict(
        frame_paths=np.array([p for paths in tracklets for p in paths],
                             dtype=str),
        frame_path_offsets=np.concatenate([[0], np.cumsum(counts)
                                           ]).astype(np.int64))


def _describe(sample: dict, index: int) -> str:
    """Name a data sample in error messages."""
    parts = [f'data sample {index}']
    if sample.get('split') is not None:
        parts.append(f"split {sample['split']!r}")
    if sample.get('tracklet_id') is not None:
        parts.append(f"tracklet_id {int(sample['tracklet_id'])}")
    frames = sample.get('frame_paths')
    if frames:
        parts.append(f'first frame {frames[0]}')
    return ', '.join(parts)


def _single_int(value: Any, key: str, where: str) -> int:
    """The one integer held by a scalar, a 0-d or a 1-element tensor."""
    array = np.asarray(
        value.cpu() if isinstance(value, torch.Tensor) else value)
    if array.size != 1:
        raise ValueError(
            f'{where}: `{key}` must hold one value per tracklet, got shape '
            f'{array.shape}' +
            (' (one camera id per tracklet is expected; per-frame or '
             'per-clip camera ids inflate the results)' if key ==
             'camid' else ''))
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f'{where}: `{key}` must be an integer, got dtype {array.dtype}')
    return int(array.reshape(()))


def _sampling(results: List[dict]) -> str:
    """Describe the frame sampling from what the data samples recorded."""
    modes = sorted(
        {str(r['sample_mode'])
         for r in results if 'sample_mode' in r})
    parts = ['/'.join(modes)] if modes else []
    lengths = sorted({int(r['clip_len']) for r in results if 'clip_len' in r})
    if lengths:
        parts.append('T=' + '/'.join(str(t) for t in lengths))
    clips = [int(r['num_clips']) for r in results if 'num_clips' in r]
    if clips:
        parts.append(f'{min(clips)}-{max(clips)} clips per tracklet '
                     f'(mean {np.mean(clips):.1f})')
    return ', '.join(parts) if parts else 'not recorded in the data samples'


@METRICS.register_module()
class ReIDMetric(BaseMetric):
    """CMC and mAP of video (or image) person re-identification.

    Each data sample brings a tracklet embedding (data field
    ``pred_feature``, a 1-D tensor), its identity (``gt_label``), its camera
    (data field ``camid``, one per tracklet) and its ``split`` (metainfo,
    ``'query'`` or ``'gallery'``). After the whole test set is seen, the
    queries are ranked against the gallery with
    :func:`~mmtfclip.evaluation.functional.evaluate_rank`, which follows the
    standard rule: same-identity same-camera gallery entries are discarded
    and queries without a true match are skipped.

    Two evaluation protocols, chosen by ``query_in_gallery``:

    - ``True`` (the MARS evaluation code's and the TF-CLIP authors'): the
      query tracklets also join the gallery; each query then finds itself,
      and every other tracklet of its identity and camera, and discards them
      by the rule above; a query of another identity is a gallery entry like
      any other.
    - ``False`` (torchreid's): the gallery is the gallery split only.

    The metrics are percentages (rounded to 1e-4): ``mAP`` and ``rank{k}``
    for each ``k`` in ``topk``, reported as ``reid/mAP``, ``reid/rank1``,
    ... with the default prefix. Each evaluation logs its protocol next to
    the numbers.

    Args:
        dist_metric (str): ``'euclidean'`` (squared euclidean distance, the
            same ranking) or ``'cosine'`` (1 - cosine similarity).
            Defaults to ``'euclidean'``.
        feat_norm (bool): L2-normalise the embeddings first, as the
            TF-CLIP authors test. Defaults to True.
        query_in_gallery (bool): Put the queries into the gallery as well
            (see above). Defaults to True.
        topk (int | Sequence[int]): The CMC ranks to report.
            Defaults to ``(1, 5, 10, 20)``.
        rerank (bool): Apply k-reciprocal re-ranking (Zhong et al., CVPR
            2017) to the distances. With ``'euclidean'``, re-ranking sees
            euclidean distances, which it squares, as the paper's release
            does. Defaults to False.
        k1 (int): Re-ranking k-reciprocal neighbourhood. Defaults to 20.
        k2 (int): Re-ranking query-expansion size. Defaults to 6.
        lambda_value (float): Re-ranking weight of the original distance.
            Defaults to 0.3.
        dump_path (str, optional): Write an ``.npz`` with the embeddings
            (as compared, i.e. normalised if ``feat_norm``), ``pids``,
            ``camids``, ``splits``, ``query_index`` and ``gallery_index``
            (rows of the embeddings that make the queries and the gallery),
            the final ``distmat`` ``[num_query, num_gallery]``, the protocol
            (JSON text), and the ``tracklet_ids`` and frame paths
            (``frame_paths`` concatenated, ``frame_path_offsets``) when every
            sample carries them. It loads without pickle. Defaults to None.
        collect_device (str): Device to gather results across ranks on,
            ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Prefix of the metric names; ``'reid'`` when
            not given.
    """
    default_prefix: Optional[str] = 'reid'

    def __init__(self,
                 dist_metric: str = 'euclidean',
                 feat_norm: bool = True,
                 query_in_gallery: bool = True,
                 topk: Union[int, Sequence[int]] = (1, 5, 10, 20),
                 rerank: bool = False,
                 k1: int = 20,
                 k2: int = 6,
                 lambda_value: float = 0.3,
                 dump_path: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if dist_metric not in DISTANCE_METRICS:
            raise ValueError(f'ReIDMetric: dist_metric must be one of '
                             f'{DISTANCE_METRICS}, got {dist_metric!r}')
        topk = (topk, ) if isinstance(topk, int) else tuple(topk)
        if not topk or any(
                not isinstance(k, int) or isinstance(k, bool) or k < 1
                for k in topk):
            raise ValueError('ReIDMetric: topk must be positive integers, '
                             f'got {topk}')
        for name, value in (('k1', k1), ('k2', k2)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f'ReIDMetric: {name} must be an integer >= 1, got {value}')
        if not 0.0 <= lambda_value <= 1.0:
            raise ValueError('ReIDMetric: lambda_value must be in [0, 1], '
                             f'got {lambda_value}')
        if dump_path is not None and not str(dump_path).endswith('.npz'):
            raise ValueError(
                f'ReIDMetric: dump_path must end with .npz, got {dump_path}')
        self.dist_metric = dist_metric
        self.feat_norm = feat_norm
        self.query_in_gallery = query_in_gallery
        self.topk = topk
        self.rerank = rerank
        self.k1 = k1
        self.k2 = k2
        self.lambda_value = lambda_value
        self.dump_path = dump_path

    def process(self, data_batch: Any,
                data_samples: Sequence[Union[dict, BaseDataElement]]) -> None:
        """Keep the embedding, identity, camera and split of each sample.

        Args:
            data_batch (Any): The batch from the dataloader (unused).
            data_samples (Sequence[dict | BaseDataElement]): The model's
                predictions (``DataSample`` objects, or their ``to_dict()``
                as mmengine's ``Evaluator`` passes them).
        """
        for sample in data_samples:
            if isinstance(sample, BaseDataElement):
                sample = sample.to_dict()
            index = len(self.results)
            where = _describe(sample, index)
            for key in ('pred_feature', 'gt_label', 'camid', 'split'):
                if key not in sample:
                    raise KeyError(
                        f'ReIDMetric: {where} has no `{key}`; a test data '
                        'sample needs `pred_feature` (from the model in '
                        "'predict' mode), `gt_label`, `camid` and the "
                        '`split` metainfo')
            feature = torch.as_tensor(sample['pred_feature']).detach()
            if feature.dim() != 1:
                raise ValueError(
                    f'ReIDMetric: {where}: `pred_feature` must be a 1-D '
                    'tracklet embedding (clips averaged), got shape '
                    f'{tuple(feature.shape)}')
            if sample['split'] not in SPLITS:
                raise ValueError(f'ReIDMetric: {where}: split must be one of '
                                 f"{SPLITS}, got {sample['split']!r}")
            result = dict(
                feature=feature.float().cpu(),
                pid=_single_int(sample['gt_label'], 'gt_label', where),
                camid=_single_int(sample['camid'], 'camid', where),
                split=sample['split'])
            if sample.get('tracklet_id') is not None:
                result['tracklet_id'] = int(sample['tracklet_id'])
            # How the frames were sampled, for the protocol line.
            for key in ('sample_mode', 'clip_len', 'num_clips'):
                if sample.get(key) is not None:
                    result[key] = sample[key]
            if sample.get('frame_paths') is not None:
                result['frame_paths'] = [str(p) for p in sample['frame_paths']]
            self.results.append(result)

    def compute_metrics(self, results: List[dict]) -> dict:
        """Rank the queries against the gallery and compute CMC and mAP.

        Args:
            results (list[dict]): What :meth:`process` kept, all ranks.

        Returns:
            dict: ``mAP`` and ``rank{k}`` in percent.
        """
        if not results:
            raise ValueError('ReIDMetric: no data samples were processed')
        dims = sorted({r['feature'].numel() for r in results})
        if len(dims) > 1:
            raise ValueError('ReIDMetric: the embeddings differ in length '
                             f'across samples: {dims}')
        features = torch.stack([r['feature'] for r in results])
        pids = np.array([r['pid'] for r in results], dtype=np.int64)
        camids = np.array([r['camid'] for r in results], dtype=np.int64)
        splits = np.array([r['split'] for r in results])
        query_index = np.flatnonzero(splits == 'query')
        if query_index.size == 0:
            raise ValueError('ReIDMetric: no query samples: the test set must '
                             "hold samples with split='query'")
        if not (splits == 'gallery').any():
            raise ValueError('ReIDMetric: no gallery samples: the test set '
                             "must hold samples with split='gallery'")
        # With the queries in the gallery, the gallery is the whole test set
        # in loader order, as the authors' evaluator builds it.
        gallery_index = (
            np.arange(len(splits))
            if self.query_in_gallery else np.flatnonzero(splits == 'gallery'))

        if self.feat_norm:
            features = F.normalize(features, p=2, dim=1)
        query = features[torch.from_numpy(query_index)]
        gallery = features[torch.from_numpy(gallery_index)]
        distmat = self._distances(query, gallery)
        q_pids, g_pids = pids[query_index], pids[gallery_index]
        q_camids, g_camids = camids[query_index], camids[gallery_index]

        cmc, mean_ap = evaluate_rank(
            distmat,
            q_pids,
            g_pids,
            q_camids,
            g_camids,
            max_rank=max(self.topk))
        num_no_match = int((count_valid_matches(q_pids, g_pids, q_camids,
                                                g_camids) == 0).sum())
        # Percentages rounded to 1e-4: the float32 CMC would otherwise print
        # as 69.9999988 for 70 %.
        metrics = {'mAP': round(float(mean_ap) * 100, 4)}
        for k in self.topk:
            # A gallery smaller than k: every gallery entry is within rank k.
            metrics[f'rank{k}'] = round(
                float(cmc[min(k, len(cmc)) - 1]) * 100, 4)
        # The authors' model-selection criterion (cmc[0] + mAP).
        metrics['mAP+rank1'] = round((float(mean_ap) + float(cmc[0])) * 100, 4)

        protocol = self._protocol(
            len(query_index), len(gallery_index), num_no_match,
            _sampling(results))
        numbers = ', '.join(f'{name} {value:.2f}'
                            for name, value in metrics.items())
        print_log(
            f'ReID evaluation: {numbers} | {protocol["summary"]}',
            logger='current')
        if self.dump_path is not None:
            self._dump(features, pids, camids, splits, query_index,
                       gallery_index, distmat, results, protocol)
        return metrics

    def _distances(self, query: torch.Tensor,
                   gallery: torch.Tensor) -> np.ndarray:
        """Query-gallery distances, re-ranked when asked."""
        distmat = compute_distance_matrix(query, gallery, self.dist_metric)
        if not self.rerank:
            return distmat.numpy()
        q_q = compute_distance_matrix(query, query, self.dist_metric)
        g_g = compute_distance_matrix(gallery, gallery, self.dist_metric)
        matrices: Tuple[torch.Tensor, ...] = (distmat, q_q, g_g)
        if self.dist_metric == 'euclidean':
            # re_ranking squares what it gets: hand it euclidean distances
            # (in place: g_g alone is 0.7 GB at MARS size).
            matrices = tuple(m.sqrt_() for m in matrices)
        return re_ranking(
            *(m.numpy() for m in matrices),
            k1=self.k1,
            k2=self.k2,
            lambda_value=self.lambda_value)

    def _protocol(self, num_query: int, num_gallery: int, num_no_match: int,
                  sampling: str) -> dict:
        """The settings of this evaluation, as a dict and one log line."""
        if self.query_in_gallery:
            gallery = ('query + gallery tracklets (query_in_gallery=True, '
                       'the MARS/TF-CLIP protocol; same-id same-camera '
                       'entries, the query itself included, discarded)')
        else:
            gallery = ('gallery tracklets only (query_in_gallery=False, the '
                       'torchreid protocol; same-id same-camera entries '
                       'discarded)')
        distance = ('squared euclidean'
                    if self.dist_metric == 'euclidean' else '1 - cosine')
        norm = 'L2-normalised' if self.feat_norm else 'raw'
        rerank = (f'k-reciprocal (k1={self.k1}, k2={self.k2}, '
                  f'lambda={self.lambda_value})' if self.rerank else 'off')
        summary = (f'{num_query} queries vs {num_gallery} gallery entries; '
                   f'sampling = {sampling}; '
                   f'gallery = {gallery}; distance = {distance} on {norm} '
                   f'features; re-ranking = {rerank}; {num_no_match} '
                   'queries without a true match (skipped)')
        return dict(
            num_query=num_query,
            num_gallery=num_gallery,
            query_in_gallery=self.query_in_gallery,
            dist_metric=self.dist_metric,
            feat_norm=self.feat_norm,
            rerank=self.rerank,
            k1=self.k1,
            k2=self.k2,
            lambda_value=self.lambda_value,
            num_queries_without_match=num_no_match,
            sampling=sampling,
            summary=summary)

    def _dump(self, features: torch.Tensor, pids: np.ndarray,
              camids: np.ndarray, splits: np.ndarray, query_index: np.ndarray,
              gallery_index: np.ndarray, distmat: np.ndarray,
              results: List[dict], protocol: dict) -> None:
        """Write the evaluation's inputs and distances to ``dump_path``."""
        arrays = dict(
            features=features.numpy().astype(np.float32),
            pids=pids,
            camids=camids,
            splits=splits,
            query_index=query_index.astype(np.int64),
            gallery_index=gallery_index.astype(np.int64),
            distmat=np.asarray(distmat, dtype=np.float32),
            protocol=np.array(json.dumps(protocol)))
        if all('tracklet_id' in r for r in results):
            arrays['tracklet_ids'] = np.array(
                [r['tracklet_id'] for r in results], dtype=np.int64)
        if all('frame_paths' in r for r in results):
            arrays.update(
                pack_frame_paths([r['frame_paths'] for r in results]))
        directory = osp.dirname(osp.abspath(self.dump_path))
        mkdir_or_exist(directory)
        np.savez(self.dump_path, **arrays)
        print_log(
            f'ReIDMetric: features, ids, cameras and distances written to '
            f'{self.dump_path}',
            logger='current')
