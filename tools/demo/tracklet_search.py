# Copyright (c) mmtfclip contributors. All rights reserved.
"""Rank a folder of gallery tracklets against one query tracklet.

The query is a folder of frames, or a video with a box track CSV
(``frame,x,y,w,h``). The gallery is ``<gallery>/<tracklet>/`` or
``<gallery>/<camera>/<tracklet>/``. See docs/tracklet_search.md.
"""
import argparse
import os.path as osp

from mmengine.config import DictAction

from mmtfclip.apis import (embed_tracklets, extract_tracklet_features,
                           gallery_cache_key, init_model, list_gallery,
                           load_gallery_cache, rank_gallery,
                           read_video_tracklet, save_gallery_cache,
                           tracklet_frames)
from mmtfclip.visualization import ReIDRankingVisualizer


def parse_args():
    parser = argparse.ArgumentParser(
        description='Search a gallery of tracklets for a query tracklet')
    parser.add_argument('config', help='config file of the model')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--query',
        required=True,
        help='a folder of frames (one tracklet) or a video file (with '
        '--boxes)')
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
        help='0-based camera id of the query, fed to the model\'s camera '
        'embedding (SIE) if it has one')
    parser.add_argument(
        '--topk', type=int, default=10, help='gallery tracklets shown')
    parser.add_argument(
        '--out', default='ranking.png', help='the ranking picture')
    parser.add_argument(
        '--cache',
        help='.npz file keeping the gallery embeddings; reused when the '
        'checkpoint, the test pipeline and the gallery are unchanged')
    parser.add_argument(
        '--batch-size', type=int, default=16, help='tracklets per forward')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config')
    return parser.parse_args()


def load_query(args):
    """The query's frames (paths or an RGB array) and its name."""
    if osp.isdir(args.query):
        if args.boxes:
            raise ValueError('--boxes goes with a video query, but --query '
                             f'{args.query} is a folder of frames.')
        return tracklet_frames(args.query)
    if osp.isfile(args.query):
        if not args.boxes:
            raise ValueError(f'--query {args.query} is a file: give its box '
                             'track with --boxes track.csv.')
        return read_video_tracklet(args.query, args.boxes)
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


def main():
    args = parse_args()
    model = init_model(args.config, args.checkpoint, args.device,
                       args.cfg_options)
    num_cams = model.num_cams if model.use_camera_ids else 0
    if num_cams and not 0 <= args.query_camid < num_cams:
        raise ValueError(f'--query-camid {args.query_camid} is not one of '
                         f'the model\'s {num_cams} cameras (0-based).')
    query = load_query(args)
    gallery = list_gallery(args.gallery, num_cams)

    features = None
    if args.cache:
        key = gallery_cache_key(args.checkpoint, model, gallery)
        features = load_gallery_cache(args.cache, key)
    if features is None:
        features = embed_tracklets(model, [t.frame_paths for t in gallery],
                                   [t.camid for t in gallery], args.batch_size)
        if args.cache:
            save_gallery_cache(args.cache, key, features)
    query_feature = extract_tracklet_features(model, [query],
                                              [args.query_camid])[0]
    order, dists = rank_gallery(query_feature, features,
                                **distance_settings(model.cfg))

    print(f'\nQuery {args.query}: {len(gallery)} gallery tracklets ranked')
    print(f'{"rank":>4}  {"distance":>9}  {"camera":<12}  tracklet')
    for rank, (i, dist) in enumerate(zip(order, dists), 1):
        camera = gallery[i].camera or '-'
        print(f'{rank:>4}  {dist:9.4f}  {camera:<12}  {gallery[i].path}')

    top = order[:args.topk]
    visualizer = ReIDRankingVisualizer(name='tracklet_search')
    visualizer.visualize_ranking(
        query, [gallery[i].frame_paths for i in top],
        [float(d) for d in dists[:args.topk]],
        query_label=f'query {osp.basename(osp.normpath(args.query))}',
        gallery_labels=[
            (f'{gallery[i].camera}/' if gallery[i].camera else '') +
            osp.basename(gallery[i].path) for i in top
        ],
        out_file=args.out)
    print(f'Ranking picture: {args.out}')


if __name__ == '__main__':
    main()
