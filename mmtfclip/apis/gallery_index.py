# Copyright (c) mmtfclip contributors. All rights reserved.
"""A persistent index of gallery embeddings, searched exactly or with faiss.

The index is a folder::

    INDEX/
      manifest.json          what the embeddings depend on, the shards, the
                             faiss index; written last, atomically
      shard_00000.npy        float32 embeddings [rows, D], as the model gave
      shard_00000.json       the tracklet of each row
      ...
      faiss.index            optional, built once from the shards

Each shard is written once (atomically, :func:`mmtfclip.fileio.
atomic_write_bytes`) and never changed: extending the index writes a new
shard and a new manifest, so the embeddings already there are not
recomputed. Reading checks every file against the SHA-256 and the row count
the manifest records, and the manifest's key against the model: a damaged,
truncated or stale index is reported and rebuilt, never used.
"""
import hashlib
import io
import json
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.logging import print_log

from mmtfclip.fileio import atomic_write_bytes, file_sha256

#: ``manifest.json``'s ``format``; ``FORMAT_VERSION`` bumps on changes.
INDEX_FORMAT = 'mmtfclip-gallery-index'
FORMAT_VERSION = 1
MANIFEST = 'manifest.json'
FAISS_FILE = 'faiss.index'
_SHARD_RE = re.compile(r'^shard_\d{5,}\.(npy|json)$')
ENGINES = ('exact', 'faiss')
#: Below this many rows ``faiss_factory='auto'`` builds a flat (exact)
#: faiss index; from it on an inverted file (IVF) one.
AUTO_IVF_ROWS = 100_000


def import_faiss():
    """Import faiss, an optional dependency, or say how to get it."""
    try:
        import faiss
    except ImportError as err:
        raise ImportError(
            'The faiss search engine needs the faiss package, an optional '
            'dependency of mmtfclip: `pip install faiss-cpu` (or '
            'faiss-gpu). Exact search (the default) needs nothing more.'
        ) from err
    return faiss


def auto_faiss_factory(num_rows: int) -> str:
    """The faiss index ``'auto'`` builds: ``'Flat'`` (exact) below
    :data:`AUTO_IVF_ROWS` rows, else an inverted file of ``sqrt(rows)``
    lists, ``'IVF{n},Flat'``."""
    if num_rows < AUTO_IVF_ROWS:
        return 'Flat'
    return f'IVF{int(num_rows**0.5)},Flat'


def _json_bytes(obj) -> bytes:
    return json.dumps(obj, indent=1, sort_keys=True).encode()


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def flatten_dict(obj, prefix: str = '') -> Dict[str, object]:
    """``{'a': {'b': 1}, 'c': [2]}`` -> ``{'a.b': 1, 'c.0': 2}``."""
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return {prefix: obj}
    flat = {}
    for key, value in items:
        flat.update(flatten_dict(value, f'{prefix}{key}.'))
    if not flat:
        flat[prefix] = obj
    return {k.rstrip('.'): v for k, v in flat.items()}


def describe_difference(old: dict, new: dict, limit: int = 3) -> str:
    """The first few settings that differ between two nested dicts."""
    was, now = flatten_dict(old), flatten_dict(new)
    keys = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))
    text = ', '.join(f'{k}: {was.get(k, "<unset>")!r} -> '
                     f'{now.get(k, "<unset>")!r}' for k in keys[:limit])
    if len(keys) > limit:
        text += f' and {len(keys) - limit} more'
    return text


def config_digest(settings: dict) -> str:
    """SHA-256 of settings as canonical JSON (non-JSON values as text)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class GalleryIndex:
    """Gallery embeddings with their tracklets, searched by distance.

    The distance is the one of ``ReIDMetric``: with ``feat_norm`` the
    embeddings are L2-normalised first, then compared with ``dist_metric``
    (squared euclidean or ``1 - cos``), so that a search ranks as the
    evaluation does. The index stores the embeddings as the model gave them;
    the search settings can change without recomputing them.

    Args:
        root (str, optional): The index folder; None keeps the index in
            memory only. Defaults to None.
        key (dict, optional): What the embeddings depend on (see
            :func:`mmtfclip.apis.embedding_key`); recorded in the manifest
            and compared when the index is read. Defaults to None (empty).
        settings (dict, optional): The readable settings behind ``key``,
            recorded so that a stale index can say what changed.
            Defaults to None.
        dist_metric (str): ``'euclidean'`` or ``'cosine'``.
            Defaults to ``'euclidean'``.
        feat_norm (bool): L2-normalise before comparing. Defaults to True.
        shard_rows (int): Rows per shard file when the index is written.
            Defaults to 65536.
    """

    def __init__(self,
                 root: Optional[str] = None,
                 key: Optional[dict] = None,
                 settings: Optional[dict] = None,
                 dist_metric: str = 'euclidean',
                 feat_norm: bool = True,
                 shard_rows: int = 65536) -> None:
        if dist_metric not in ('euclidean', 'cosine'):
            raise ValueError("dist_metric must be 'euclidean' or 'cosine', "
                             f'got {dist_metric!r}.')
        if shard_rows < 1:
            raise ValueError(f'shard_rows must be >= 1, got {shard_rows}.')
        self.root = None if root is None else osp.abspath(root)
        self.key = dict(key or {})
        self.settings = dict(settings or {})
        self.dist_metric = dist_metric
        self.feat_norm = feat_norm
        self.shard_rows = shard_rows
        self.dim: Optional[int] = None
        self.records: List[dict] = []
        self._shards: List[dict] = []  # manifest entries
        self._vectors: List[np.ndarray] = []  # in the compared form
        self._sq_norms: List[np.ndarray] = []  # of the rows of each
        self._faiss = None
        self._faiss_entry: Optional[dict] = None

    # ------------------------------------------------------------------
    # The compared form of the embeddings
    # ------------------------------------------------------------------
    @property
    def num_rows(self) -> int:
        """The number of gallery entries."""
        return len(self.records)

    @property
    def has_faiss(self) -> bool:
        """Whether a faiss index is built or read."""
        return self._faiss is not None

    @property
    def faiss_factory(self) -> Optional[str]:
        """The factory string of the faiss index (None before one)."""
        return (self._faiss_entry or {}).get('factory')

    def _compared(self, features: np.ndarray) -> np.ndarray:
        """Unit vectors with ``feat_norm`` and for the cosine distance
        (which does not depend on the length), else the raw ones."""
        features = np.ascontiguousarray(features, dtype=np.float32)
        if self._uses_inner_product():
            norms = np.linalg.norm(features, axis=1, keepdims=True)
            features = features / np.maximum(norms, 1e-12)
        return features

    def _append_vectors(self, compared: np.ndarray) -> None:
        self._vectors.append(compared)
        self._sq_norms.append(np.einsum('ij,ij->i', compared, compared))

    @staticmethod
    def _check_features(features: np.ndarray, what: str) -> None:
        if features.ndim != 2:
            raise ValueError(f'{what}: expected [N, D] embeddings, got shape '
                             f'{features.shape}.')
        bad = ~np.isfinite(features).all(axis=1)
        if bad.any():
            raise ValueError(f'{what}: {int(bad.sum())} rows hold NaN or '
                             f'infinite values (first: row '
                             f'{int(np.flatnonzero(bad)[0])}).')

    # ------------------------------------------------------------------
    # Writing
    # ------------------------------------------------------------------
    def add(self, features, records: Sequence[dict]) -> None:
        """Append gallery entries; with a ``root``, write them as new shards.

        Args:
            features (np.ndarray | Tensor): ``[N, D]`` embeddings.
            records (Sequence[dict]): One JSON-serialisable description per
                row (the tool's: ``tracklet``, ``camera``, ``camid``,
                ``frames``).
        """
        if isinstance(features, torch.Tensor):
            features = features.detach().cpu().float().numpy()
        features = np.ascontiguousarray(features, dtype=np.float32)
        self._check_features(features, 'Gallery embeddings to add')
        if len(features) != len(records):
            raise ValueError(f'{len(features)} embeddings but '
                             f'{len(records)} records.')
        if self.dim is None:
            self.dim = features.shape[1]
        elif features.shape[1] != self.dim:
            raise ValueError(f'The index holds {self.dim}-d embeddings; got '
                             f'{features.shape[1]}-d ones.')
        for start in range(0, len(features), self.shard_rows):
            rows = features[start:start + self.shard_rows]
            recs = list(records[start:start + self.shard_rows])
            if self.root is not None:
                self._write_shard(rows, recs)
            self._append_vectors(self._compared(rows))
            self.records.extend(recs)
            if self._faiss is not None:
                self._faiss.add(self._vectors[-1])
        if self._faiss is not None:
            self._faiss_entry['rows'] = self.num_rows
            self._save_faiss()
        self._write_manifest()

    def _write_shard(self, rows: np.ndarray, recs: List[dict]) -> None:
        name = f'shard_{len(self._shards):05d}'
        features, tracklets = f'{name}.npy', f'{name}.json'
        feature_bytes, record_bytes = _npy_bytes(rows), _json_bytes(recs)
        atomic_write_bytes(feature_bytes, osp.join(self.root, features))
        atomic_write_bytes(record_bytes, osp.join(self.root, tracklets))
        self._shards.append(
            dict(
                features=features,
                tracklets=tracklets,
                rows=len(rows),
                features_sha256=hashlib.sha256(feature_bytes).hexdigest(),
                tracklets_sha256=hashlib.sha256(record_bytes).hexdigest()))

    def _write_manifest(self) -> None:
        if self.root is None:
            return
        manifest = dict(
            format=INDEX_FORMAT,
            version=FORMAT_VERSION,
            key=self.key,
            settings=self.settings,
            dim=self.dim,
            num_rows=self.num_rows,
            shards=self._shards,
            faiss=self._faiss_entry)
        atomic_write_bytes(
            _json_bytes(manifest), osp.join(self.root, MANIFEST))
        # Shards of an index this one replaced are no longer listed.
        listed = {
            f
            for s in self._shards
            for f in (s['features'], s['tracklets'])
        }
        for name in os.listdir(self.root):
            if _SHARD_RE.match(name) and name not in listed:
                os.remove(osp.join(self.root, name))

    @staticmethod
    def prepare_root(root: str) -> None:
        """Refuse to write an index into a folder that holds other files."""
        if osp.isdir(root) and not osp.isfile(osp.join(root, MANIFEST)):
            others = [
                n for n in os.listdir(root)
                if not (_SHARD_RE.match(n) or n == FAISS_FILE)
            ]
            if others:
                raise FileExistsError(
                    f'{root} is not a gallery index (no {MANIFEST}) but holds '
                    f'other files, e.g. {sorted(others)[0]}; give a new or '
                    'empty folder for the index.')
        os.makedirs(root, exist_ok=True)

    # ------------------------------------------------------------------
    # Reading
    # ------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        root: str,
        key: Optional[dict] = None,
        dist_metric: str = 'euclidean',
        feat_norm: bool = True,
        settings: Optional[dict] = None
    ) -> Tuple[Optional['GalleryIndex'], str]:
        """Read an index, checking every file it lists.

        Args:
            root (str): The index folder.
            key (dict, optional): The key the index must have been built
                with; None accepts any. Defaults to None.
            dist_metric (str): Search distance. Defaults to ``'euclidean'``.
            feat_norm (bool): Search normalisation. Defaults to True.
            settings (dict, optional): The readable settings behind
                ``key``, to say what changed. Defaults to None.

        Returns:
            tuple[GalleryIndex | None, str]: The index, or None and why it
            cannot be used (missing, unreadable, damaged or stale).
        """
        path = osp.join(root, MANIFEST)
        if not osp.isfile(path):
            return None, f'there is no index in {root} yet'
        try:
            with open(path, 'rb') as f:
                manifest = json.loads(f.read().decode())
            if manifest.get('format') != INDEX_FORMAT:
                return None, f'{path} is not a gallery index manifest'
            if manifest.get('version') != FORMAT_VERSION:
                return None, (f'{path} was written in format version '
                              f'{manifest.get("version")}, not '
                              f'{FORMAT_VERSION}')
            if key is not None and manifest['key'] != key:
                return None, 'it is stale: ' + cls._staleness(
                    manifest, key, settings)
            index = cls(
                root,
                manifest['key'],
                manifest.get('settings'),
                dist_metric=dist_metric,
                feat_norm=feat_norm)
            index.dim = manifest['dim']
            for shard in manifest['shards']:
                problem = index._read_shard(shard)
                if problem:
                    return None, problem
            if index.num_rows != manifest['num_rows']:
                return None, (f'{path} says {manifest["num_rows"]} rows but '
                              f'its shards hold {index.num_rows}')
            index._faiss_entry = manifest.get('faiss')
        except (ValueError, KeyError, TypeError, OSError) as err:
            return None, f'{path} is unreadable ({type(err).__name__}: {err})'
        return index, ''

    @staticmethod
    def _staleness(manifest: dict, key: dict, settings: Optional[dict]) -> str:
        """Why an index's key differs, in words."""
        old_key, old = manifest['key'], manifest.get('settings') or {}
        reasons = []
        if settings is not None and old_key.get('config_sha256') != key.get(
                'config_sha256'):
            changed = describe_difference(
                {
                    k: v
                    for k, v in old.items() if k != 'checkpoint'
                }, {
                    k: v
                    for k, v in settings.items() if k != 'checkpoint'
                })
            reasons.append('the embedding settings of the config differ (' +
                           (changed or 'settings not recorded') + ')')
        if settings is not None and old_key.get(
                'checkpoint_sha256') != key.get('checkpoint_sha256'):
            reasons.append(f'the checkpoint content differs (it was built '
                           f'with {old.get("checkpoint")}, checkpoint_sha256 '
                           'differs)')
        return '; '.join(reasons) or ('its key differs: ' +
                                      describe_difference(old_key, key))

    def _read_shard(self, shard: dict) -> str:
        """Read one shard into the index; a problem in words, or ''."""
        files = {}
        for kind in ('features', 'tracklets'):
            path = osp.join(self.root, shard[kind])
            if not osp.isfile(path):
                return f'{path} is missing'
            if file_sha256(path) != shard[f'{kind}_sha256']:
                return (f'{path} does not match the SHA-256 recorded in the '
                        'manifest (truncated, damaged or replaced)')
            files[kind] = path
        features = np.load(files['features'], allow_pickle=False)
        with open(files['tracklets'], 'rb') as f:
            records = json.loads(f.read().decode())
        rows = shard['rows']
        if (features.dtype != np.float32 or features.ndim != 2
                or features.shape != (rows, self.dim) or len(records) != rows):
            return (f'{files["features"]} holds {features.dtype} '
                    f'{features.shape} and {len(records)} tracklets, the '
                    f'manifest says float32 ({rows}, {self.dim})')
        if not np.isfinite(features).all():
            return f'{files["features"]} holds NaN or infinite values'
        self._shards.append(shard)
        self._append_vectors(self._compared(features))
        self.records.extend(records)
        return ''

    # ------------------------------------------------------------------
    # faiss
    # ------------------------------------------------------------------
    def _faiss_settings(self) -> dict:
        return dict(dist_metric=self.dist_metric, feat_norm=self.feat_norm)

    def _uses_inner_product(self) -> bool:
        return self.feat_norm or self.dist_metric == 'cosine'

    def build_faiss(self,
                    factory: str = 'auto',
                    seed: int = 0,
                    rebuild: bool = False) -> None:
        """Build (or read) the faiss index of the embeddings.

        A faiss index written earlier for the same rows and search settings
        is read instead, after checking its SHA-256; otherwise one is built
        from the embeddings (nothing is re-embedded) and, with a ``root``,
        written.

        Args:
            factory (str): A faiss index factory string, e.g. ``'Flat'``
                (exact) or ``'IVF4000,Flat'``; ``'auto'`` takes ``'Flat'``
                below :data:`AUTO_IVF_ROWS` rows and ``'IVF{n},Flat'``,
                ``n = sqrt(rows)`` lists, from it on. Defaults to
                ``'auto'``.
            seed (int): Seed of the training sample. Defaults to 0.
            rebuild (bool): Build even if a matching one is on disk.
                Defaults to False.
        """
        faiss = import_faiss()
        if not self.num_rows:
            raise ValueError('The gallery index is empty.')
        wanted = dict(
            requested=factory, rows=self.num_rows, **self._faiss_settings())
        entry = self._faiss_entry
        if (not rebuild and self.root is not None and entry is not None and {
                k: entry.get(k)
                for k in wanted
        } == wanted):
            path = osp.join(self.root, FAISS_FILE)
            if osp.isfile(path) and file_sha256(path) == entry.get('sha256'):
                data = np.fromfile(path, dtype=np.uint8)
                self._faiss = faiss.deserialize_index(data)
                return
            print_log(
                f'The faiss index {path} is missing or does not match its '
                'recorded SHA-256; building it again from the embeddings.',
                logger='current')
        if factory == 'auto':
            factory = auto_faiss_factory(self.num_rows)
        metric = (
            faiss.METRIC_INNER_PRODUCT
            if self._uses_inner_product() else faiss.METRIC_L2)
        index = faiss.index_factory(self.dim, factory, metric)
        if not index.is_trained:
            rng = np.random.default_rng(seed)
            ivf = faiss.try_extract_index_ivf(index)
            nlist = ivf.nlist if ivf is not None else 1
            sample = min(self.num_rows, max(64 * nlist, 10_000))
            rows = np.sort(rng.choice(self.num_rows, sample, replace=False))
            index.train(self._gather(rows))
        for block in self._vectors:
            index.add(block)
        self._faiss = index
        self._faiss_entry = dict(wanted, factory=factory)
        self._save_faiss()
        self._write_manifest()

    def _gather(self, rows: np.ndarray) -> np.ndarray:
        starts = np.cumsum([0] + [len(v) for v in self._vectors])
        out = []
        for i, block in enumerate(self._vectors):
            sel = rows[(rows >= starts[i]) & (rows < starts[i + 1])]
            out.append(block[sel - starts[i]])
        return np.ascontiguousarray(np.concatenate(out))

    def _save_faiss(self) -> None:
        if self.root is None:
            return
        faiss = import_faiss()
        data = faiss.serialize_index(self._faiss).tobytes()
        atomic_write_bytes(data, osp.join(self.root, FAISS_FILE))
        self._faiss_entry['sha256'] = hashlib.sha256(data).hexdigest()

    # ------------------------------------------------------------------
    # Search
    # ------------------------------------------------------------------
    def search(self,
               queries,
               topk: int = 10,
               engine: str = 'exact',
               nprobe: int = 32,
               query_block: int = 256) -> Tuple[np.ndarray, np.ndarray]:
        """The ``topk`` nearest gallery entries of each query.

        Args:
            queries (np.ndarray | Tensor): ``[Q, D]`` query embeddings, as
                the model gives them.
            topk (int): Entries per query (at most the gallery's size).
                Defaults to 10.
            engine (str): ``'exact'`` (every distance, as
                :func:`~mmtfclip.evaluation.functional.compute_distance_matrix`
                computes it) or ``'faiss'`` (the index
                of :meth:`build_faiss`, built with ``'auto'`` if not yet).
                Defaults to ``'exact'``.
            nprobe (int): Inverted lists visited per query by an IVF faiss
                index. Defaults to 32.
            query_block (int): Queries compared at once by the exact search.
                Defaults to 256.

        Returns:
            tuple[np.ndarray, np.ndarray]: ``[Q, k]`` row indices (best
            first; -1 where an approximate index found fewer) and their
            distances (``inf`` there).
        """
        if engine not in ENGINES:
            raise ValueError(f'engine must be one of {ENGINES}, got '
                             f'{engine!r}.')
        if not self.num_rows:
            raise ValueError('The gallery index is empty.')
        if isinstance(queries, torch.Tensor):
            queries = queries.detach().cpu().float().numpy()
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f'Queries must be [Q, {self.dim}], got '
                             f'{queries.shape}.')
        self._check_features(queries, 'Query embeddings')
        topk = min(int(topk), self.num_rows)
        if topk < 1:
            raise ValueError(f'topk must be >= 1, got {topk}.')
        if engine == 'faiss':
            return self._search_faiss(queries, topk, nprobe)
        results = [
            self._search_exact(queries[s:s + query_block], topk)
            for s in range(0, len(queries), query_block)
        ]
        return (np.concatenate([r[0] for r in results]),
                np.concatenate([r[1] for r in results]))

    def _search_exact(self, queries: np.ndarray,
                      topk: int) -> Tuple[np.ndarray, np.ndarray]:
        """Every distance, as :func:`compute_distance_matrix` computes it
        (``|q|^2 + |g|^2 - 2 q.g`` clamped at 0, or ``1 - cos``), with the
        gallery's squared norms kept rather than recomputed per query: on a
        large gallery they cost more than the product itself."""
        query = self._compared(queries)
        q_sq = np.einsum('ij,ij->i', query, query)[:, None]
        cand_idx, cand_dist = [], []
        start = 0
        for block, g_sq in zip(self._vectors, self._sq_norms):
            product = query @ block.T
            if self.dist_metric == 'cosine':
                dist = 1 - product
            else:
                dist = np.maximum(q_sq + g_sq[None, :] - 2 * product, 0)
            k = min(topk, dist.shape[1])
            part = np.argpartition(dist, k - 1, axis=1)[:, :k]
            cand_idx.append(part + start)
            cand_dist.append(np.take_along_axis(dist, part, axis=1))
            start += len(block)
        idx, dist = np.concatenate(cand_idx, 1), np.concatenate(cand_dist, 1)
        # Nearest first; equal distances in gallery order.
        order = np.lexsort((idx, dist), axis=1)[:, :topk]
        return (np.take_along_axis(idx, order,
                                   1), np.take_along_axis(dist, order, 1))

    def _search_faiss(self, queries: np.ndarray, topk: int,
                      nprobe: int) -> Tuple[np.ndarray, np.ndarray]:
        faiss = import_faiss()
        if self._faiss is None:
            self.build_faiss()
        ivf = faiss.try_extract_index_ivf(self._faiss)
        if ivf is not None:
            ivf.nprobe = int(nprobe)
        query = self._compared(queries)
        scores, idx = self._faiss.search(query, topk)
        found = idx >= 0
        if self._uses_inner_product():
            # Unit vectors: |q - g|^2 = 2 - 2 q.g, and 1 - cos for cosine.
            dist = (2 - 2 * scores if self.dist_metric == 'euclidean' else 1 -
                    scores)
            dist = np.maximum(dist, 0)
        else:
            dist = np.maximum(scores, 0)
        dist = np.where(found, dist, np.inf).astype(np.float32)
        return idx.astype(np.int64), dist
