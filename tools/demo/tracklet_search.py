# Copyright (c) mmtfclip contributors. All rights reserved.
"""Rank a folder of gallery tracklets against one or many query tracklets.

A query is a folder of frames, a folder of such folders (one query each), or
a video with a box track CSV (``frame,x,y,w,h``). The gallery is
``<gallery>/<tracklet>/`` or ``<gallery>/<camera>/<tracklet>/``. The model
is loaded once; the rankings go to ``ranking.csv`` and ``ranking.json`` in
``--out-dir`` with one picture per query. See docs/tracklet_search.md.
"""
import argparse
import os.path as osp

from mmengine.config import DictAction

from mmtfclip.apis import (embed_tracklets, init_model, list_gallery,
                           list_query_tracklets, read_video_tracklet,
                           search_results, sync_gallery_index,
                           write_search_results)
from mmtfclip.visualization import ReIDRankingVisualizer


def parse_args():
    parser = argparse.ArgumentParser(
        description='Search a gallery of tracklets for query tracklets')
    parser.add_argument('config', help='config file of the model')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--query',
        required=True,
        help='a folder of frames (one query), a folder of such folders '
        '(one query each), or a video file (with --boxes)')
    parser.add_argument(
        '--boxes',
        help='box track CSV of a video query: header frame,x,y,w,h; one row '
        'per frame to crop (0-based frame index, box in pixels)')
    parser.add_argument(
        '--gallery',
        required=True,
        help='a folder of tracklet folders, or of camera folders of '
        'tracklet folders')
    parser.add_argument(
        '--query-camid',
        type=int,
        default=0,
        help='0-based camera id of the queries, fed to the model\'s camera '
        'embedding (SIE) if it has one')
    parser.add_argument(
        '--topk',
        type=int,
        default=10,
        help='gallery tracklets written and drawn per query')
    parser.add_argument(
        '--out-dir',
        default='search_results',
        help='folder of ranking.csv, ranking.json and the pictures')
    parser.add_argument(
        '--no-pictures', action='store_true', help='write no picture')
    parser.add_argument(
        '--layout',
        choices=('grid', 'row'),
        default='grid',
        help='pictures: query above a grid of results, or one row')
    parser.add_argument(
        '--index',
        help='folder of a persistent gallery index: built on the first run, '
        'reused while the model, checkpoint and gallery are unchanged, '
        'extended with new gallery tracklets')
    parser.add_argument(
        '--rebuild-index',
        action='store_true',
        help='embed the whole gallery again into --index')
    parser.add_argument(
        '--engine',
        choices=('exact', 'faiss'),
        default='exact',
        help='exact: every distance (default); faiss: a faiss index '
        '(optional dependency), for galleries of millions')
    parser.add_argument(
        '--faiss-factory',
        default='auto',
        help='faiss index factory string, e.g. Flat or IVF4000,Flat; auto: '
        'Flat below 100k tracklets, IVF above')
    parser.add_argument(
        '--nprobe',
        type=int,
        default=32,
        help='inverted lists an IVF faiss index visits per query')
    parser.add_argument(
        '--batch-size', type=int, default=16, help='tracklets per forward')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config')
    return parser.parse_args()


def load_queries(args):
    """``(name, frames)`` per query: frame paths, or an RGB array."""
    if osp.isdir(args.query):
        if args.boxes:
            raise ValueError('--boxes goes with a video query, but --query '
                             f'{args.query} is a folder.')
        return list_query_tracklets(args.query)
    if osp.isfile(args.query):
        if not args.boxes:
            raise ValueError(f'--query {args.query} is a file: give its box '
                             'track with --boxes track.csv.')
        return [(osp.abspath(args.query),
                 read_video_tracklet(args.query, args.boxes))]
    raise FileNotFoundError(f'--query {args.query} does not exist.')


def distance_settings(cfg) -> dict:
    """The distance of the config's ReIDMetric, so that the search ranks
    as the evaluation does."""
    evaluators = cfg.get('test_evaluator') or {}
    for evaluator in (evaluators
                      if isinstance(evaluators, list) else [evaluators]):
        if evaluator.get('type') == 'ReIDMetric':
            return dict(
                dist_metric=evaluator.get('dist_metric', 'euclidean'),
                feat_norm=evaluator.get('feat_norm', True))
    return dict(dist_metric='euclidean', feat_norm=True)


def picture_name(name: str, position: int) -> str:
    base = osp.basename(osp.normpath(name))
    return f'{position:03d}_{osp.splitext(base)[0]}.png'


def main():
    args = parse_args()
    if args.topk < 1:
        raise ValueError(f'--topk must be >= 1, got {args.topk}.')
    model = init_model(args.config, args.checkpoint, args.device,
                       args.cfg_options)
    num_cams = model.num_cams if model.use_camera_ids else 0
    if num_cams and not 0 <= args.query_camid < num_cams:
        raise ValueError(f'--query-camid {args.query_camid} is not one of '
                         f'the model\'s {num_cams} cameras (0-based).')
    queries = load_queries(args)
    gallery = list_gallery(args.gallery, num_cams)
    distance = distance_settings(model.cfg)

    index = sync_gallery_index(
        args.index,
        model,
        args.checkpoint,
        gallery,
        args.batch_size,
        faiss_factory=args.faiss_factory if args.engine == 'faiss' else None,
        rebuild=args.rebuild_index,
        **distance)
    query_features = embed_tracklets(
        model, [frames for _, frames in queries],
        [args.query_camid] * len(queries),
        args.batch_size,
        show_progress=len(queries) > 1)
    indices, dists = index.search(query_features, args.topk, args.engine,
                                  args.nprobe)
    names = [name for name, _ in queries]
    results = search_results(names, [args.query_camid] * len(queries), index,
                             indices, dists)
    csv_path = osp.join(args.out_dir, 'ranking.csv')
    json_path = osp.join(args.out_dir, 'ranking.json')
    write_search_results(
        results,
        csv_path,
        json_path,
        meta=dict(
            config=osp.abspath(args.config),
            checkpoint=osp.abspath(args.checkpoint),
            gallery=osp.abspath(args.gallery),
            gallery_size=index.num_rows,
            engine=args.engine,
            index=None if args.index is None else osp.abspath(args.index),
            **distance))

    by_path = {t.path: t for t in gallery}
    visualizer = ReIDRankingVisualizer(
        name='tracklet_search', layout=args.layout)
    for position, ((name, frames),
                   result) in enumerate(zip(queries, results), 1):
        print(f'\nQuery {name}: top {len(result["results"])} of '
              f'{index.num_rows} gallery tracklets')
        print(f'{"rank":>4}  {"distance":>9}  {"camera":<12}  tracklet')
        for r in result['results']:
            print(f'{r["rank"]:>4}  {r["distance"]:9.4f}  '
                  f'{r["camera"] or "-":<12}  {r["tracklet"]}')
        if args.no_pictures:
            continue
        shown = [by_path[r['tracklet']] for r in result['results']]
        visualizer.visualize_ranking(
            frames, [t.frame_paths for t in shown],
            [r['distance'] for r in result['results']],
            query_label=f'query {osp.basename(osp.normpath(name))}',
            gallery_labels=[
                (f'{t.camera}/' if t.camera else '') + osp.basename(t.path)
                for t in shown
            ],
            out_file=osp.join(args.out_dir, picture_name(name, position)))
    print(f'\nRankings of {len(queries)} queries: {csv_path}, {json_path}' +
          ('' if args.no_pictures else ', one picture per query'))


if __name__ == '__main__':
    main()
