# Copyright (c) mmtfclip contributors. All rights reserved.
"""Check that mmtfclip reproduces the authors' TF-CLIP model numerically.

The authors' ``build_transformer`` is imported from a checkout of their
repository (https://github.com/AsuradaYuci/TF-CLIP; nothing of it is
copied here) and built for MARS (625 identities, 6 cameras, T = 8,
256 x 128) in float32 on the CPU. Their CLIP loader downloads OpenAI's
weights; instead this tool patches it to build their CLIP from a random
ViT-B/16 state dict in OpenAI's layout. Their state dict is then converted
with ``tools/model_converters/tfclip_official_to_mmtfclip.py`` and loaded
into the model of ``configs/tfclip_mars.py`` through ``init_model``, and
both models get the same inputs:

- test embedding: eval mode, the same frames and cameras, ``[B, 2048]``;
- dense test embedding: N clips of one tracklet, averaged (their test code
  cannot run this with SIE, so their model is called on the N clips with
  the tracklet's camera repeated, and the clip embeddings are averaged);
- CLIP-Memory feature: their ``get_image=True`` path vs
  ``TFCLIP.extract_clip_feat``;
- training loss for the same batch (P x K identities) and the same
  memory: train mode (batch statistics in the BNNecks) with every dropout
  disabled; their loss is their ``make_loss`` closure plus the frame loss
  / T as their stage-2 loop adds it; the loss terms and the gradients of
  all weights are compared too;
- the positional-embedding resize of ``CLIPViT.load_clip_weights`` vs the
  one their CLIP loader does.

Patches applied to their code, all in this process only: their CLIP
loader (random weights, no ``.to('cuda')``), ``CenterLoss`` (built but
unused by the triplet + softmax setting; it moves its centres to CUDA)
and the ``use_gpu`` default of ``CrossEntropyLabelSmooth`` (False).

Usage::

    git -C /path/to/TF-CLIP.git archive HEAD | tar -x -C /tmp/tfclip_official
    python tools/analysis_tools/verify_against_official.py \
        --official-repo /tmp/tfclip_official

With ``--method clipreid`` the repository is the authors' CLIP-ReID code
(https://github.com/Syliz517/CLIP-ReID, which TF-CLIP is built on): their
``build_transformer`` of ``model/make_model_clipreid.py`` is built for
Market-1501 (751 identities, 6 cameras, SIE with coefficient 1 as their
README's SIE run, 256 x 128) from a random CLIP ViT-B/16 with a one-block
text tower, converted with
``tools/model_converters/clipreid_official_to_mmtfclip.py`` and loaded into
``configs/clipreid_market1501.py``; compared are the stage-1 image and text
features, both stage-1 losses (their ``SupConLoss``) and the gradient of
the prompt tokens, the stage-2 text features of every identity, the
stage-2 loss terms (their ``make_loss`` closure with the image-to-text
logits), the gradients of all trained weights, and the test embedding.
Their tokenizer's ``.cuda()`` is made a no-op, besides the patches above::

    python tools/analysis_tools/verify_against_official.py --method clipreid \
        --official-repo /path/to/CLIP-ReID

The exit status is 1 when a difference exceeds ``--atol`` (relative to the
largest magnitude compared, for the gradients).
"""
import argparse
import importlib
import os.path as osp
import sys
import tempfile
from types import SimpleNamespace
from typing import Dict, List, Tuple

import torch
import torch.nn as nn
from mmpretrain.structures import DataSample

from mmtfclip.apis import init_model
from mmtfclip.models.backbones import CLIPViT
from mmtfclip.testing import make_tiny_clip_state_dict, save_tiny_clip

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONVERTER = osp.join(REPO, 'tools', 'model_converters',
                     'tfclip_official_to_mmtfclip.py')

NUM_IDS, NUM_CAMS, NUM_FRAMES = 625, 6, 8
IMG_SIZE = (256, 128)  # (h, w)
# ImageNet's mean / std as fractions: their ToTensor + Normalize.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Compare mmtfclip with the authors\' TF-CLIP code.')
    parser.add_argument(
        '--official-repo',
        required=True,
        help='a checkout (or exported tree) of the authors\' repository')
    parser.add_argument(
        '--method',
        choices=('tfclip', 'clipreid'),
        default='tfclip',
        help='which authors\' code --official-repo holds: TF-CLIP '
        '(AsuradaYuci/TF-CLIP) or CLIP-ReID (Syliz517/CLIP-ReID); '
        'default: tfclip')
    parser.add_argument(
        '--config',
        default=None,
        help='the mmtfclip config (default: configs/tfclip_mars.py, or '
        'configs/clipreid_market1501.py with --method clipreid)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--num-seqs',
        type=int,
        default=2,
        help='sequences for the test embedding (default: 2)')
    parser.add_argument(
        '--ids-per-batch',
        type=int,
        default=2,
        help='P of the P x K training batch (default: 2)')
    parser.add_argument(
        '--seqs-per-id',
        type=int,
        default=2,
        help='K of the P x K training batch (default: 2)')
    parser.add_argument(
        '--dense-clips',
        type=int,
        default=3,
        help='clips of the dense tracklet (default: 3)')
    parser.add_argument(
        '--atol',
        type=float,
        default=1e-4,
        help='largest difference accepted (default: 1e-4)')
    return parser.parse_args()


def import_official(repo: str):
    """Import the authors' model and loss modules from their checkout."""
    repo = osp.abspath(repo)
    if not osp.isfile(osp.join(repo, 'model', 'make_model_clipreid.py')):
        raise FileNotFoundError(
            f'{repo} is not a checkout of the TF-CLIP repository (no '
            'model/make_model_clipreid.py).')
    sys.path.insert(0, repo)
    modules = SimpleNamespace(
        model=importlib.import_module('model.make_model_clipreid'),
        clip_model=importlib.import_module('model.clip.model'),
        make_loss=importlib.import_module('loss.make_loss'),
        softmax_loss=importlib.import_module('loss.softmax_loss'),
        triplet_loss=importlib.import_module('loss.triplet_loss'))
    return modules


def official_cfg(repo: str) -> SimpleNamespace:
    """Their MARS settings: configs/vit_clipreid.yml over config/defaults.py.

    Only the values their model and loss read; those the yml does not set
    take the defaults.py value.
    """
    import yaml
    with open(osp.join(repo, 'configs', 'vit_clipreid.yml')) as f:
        yml = yaml.safe_load(f)
    model, inp = yml['MODEL'], yml['INPUT']
    return SimpleNamespace(
        MODEL=SimpleNamespace(
            NAME=model['NAME'],
            COS_LAYER=False,
            NECK='bnneck',
            SIE_COE=model['SIE_COE'],
            STRIDE_SIZE=model['STRIDE_SIZE'],
            SIE_CAMERA=model['SIE_CAMERA'],
            SIE_VIEW=False,
            METRIC_LOSS_TYPE=model['METRIC_LOSS_TYPE'],
            NO_MARGIN=False,
            IF_LABELSMOOTH=model['IF_LABELSMOOTH'],
            ID_LOSS_WEIGHT=model['ID_LOSS_WEIGHT'],
            TRIPLET_LOSS_WEIGHT=model['TRIPLET_LOSS_WEIGHT'],
            I2T_LOSS_WEIGHT=model['I2T_LOSS_WEIGHT']),
        INPUT=SimpleNamespace(
            SIZE_TRAIN=inp['SIZE_TRAIN'], SEQ_LEN=inp['SEQ_LEN']),
        TEST=SimpleNamespace(NECK_FEAT=yml['TEST']['NECK_FEAT']),
        DATASETS=SimpleNamespace(NAMES=yml['DATASETS']['NAMES']),
        DATALOADER=SimpleNamespace(SAMPLER=yml['DATALOADER']['SAMPLER']),
        SOLVER=SimpleNamespace(MARGIN=0.3))


def patch_official(official, clip_state_dict: Dict[str, torch.Tensor]):
    """Make their model buildable on a CPU from the given CLIP weights."""

    def load_clip_to_cpu(backbone_name, h_resolution, w_resolution,
                         vision_stride_size):
        clip = official.clip_model.build_model(
            dict(clip_state_dict), h_resolution, w_resolution,
            vision_stride_size)
        # Their constructor moves the CLIP model to CUDA.
        clip.to = lambda *args, **kwargs: clip
        return clip

    official.model.load_clip_to_cpu = load_clip_to_cpu
    official.make_loss.CenterLoss = lambda **kwargs: None
    official.softmax_loss.CrossEntropyLabelSmooth.__init__.__defaults__ = (
        0.1, False)


def disable_dropout(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0


def samples_for(labels: List[int], cams: List[int]) -> List[DataSample]:
    samples = []
    for label, cam in zip(labels, cams):
        sample = DataSample().set_gt_label(label)
        sample.set_field(torch.tensor(cam), 'camid', field_type='data')
        samples.append(sample)
    return samples


def frames(gen: torch.Generator, *shape: int) -> torch.Tensor:
    """Random uint8 RGB frames ``[*shape, 3, H, W]``."""
    return torch.randint(
        0, 256, shape + (3, ) + IMG_SIZE, generator=gen, dtype=torch.uint8)


def their_normalise(raw: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)
    return (raw.float() / 255 - mean) / std


def grad_pairs(theirs: nn.Module, ours: nn.Module,
               converter) -> List[Tuple[str, torch.Tensor, torch.Tensor]]:
    """(our key, their gradient, our gradient) for every converted weight."""
    their_params = dict(theirs.named_parameters())
    our_params = dict(ours.named_parameters())
    pairs = []
    packed = {}
    for name, param in their_params.items():
        if name in converter.UNUSED_KEYS or param.grad is None:
            continue
        ours_name = converter.map_key(name)
        if ours_name is None or ours_name not in our_params:
            continue
        if ours_name.endswith('in_proj_weight') and name.startswith('SSP.'):
            packed.setdefault(ours_name, {})[name.rsplit('.', 2)[-2]] = (
                param.grad)
            continue
        pairs.append((ours_name, param.grad, our_params[ours_name].grad))
    for ours_name, grads in packed.items():
        pairs.append((ours_name, torch.cat([grads[f'{p}_proj'] for p in 'qkv'
                                            ]), our_params[ours_name].grad))
    return pairs


# ----------------------------------------------------------------------
# CLIP-ReID (Syliz517/CLIP-ReID, the code TF-CLIP is built on).
# ----------------------------------------------------------------------
CLIPREID_CONVERTER = osp.join(REPO, 'tools', 'model_converters',
                              'clipreid_official_to_mmtfclip.py')
MARKET_IDS, MARKET_CAMS = 751, 6
HALF = (0.5, 0.5, 0.5)  # their PIXEL_MEAN and PIXEL_STD


class _StayOnCPU(torch.Tensor):
    """A tensor whose ``.cuda()`` is a no-op: their prompt learner moves
    the tokenised template to CUDA."""

    def cuda(self, *args, **kwargs):
        return self.as_subclass(torch.Tensor)


def import_official_clipreid(repo: str, clip_state_dict):
    """Import and patch the CLIP-ReID model, losses and CLIP from a checkout.

    Patches, in this process only: their CLIP loader builds their CLIP from
    ``clip_state_dict`` (no download, no ``.to('cuda')``), their tokenizer's
    output stays on the CPU, ``CenterLoss`` (built, unused by their triplet
    + softmax setting) is skipped, ``CrossEntropyLabelSmooth`` and
    ``SupConLoss`` run on the CPU.
    """
    repo = osp.abspath(repo)
    if not osp.isfile(
            osp.join(repo, 'processor', 'processor_clipreid_stage1.py')):
        raise FileNotFoundError(
            f'{repo} is not a checkout of the CLIP-ReID repository (no '
            'processor/processor_clipreid_stage1.py).')
    sys.path.insert(0, repo)
    official = SimpleNamespace(
        model=importlib.import_module('model.make_model_clipreid'),
        clip_model=importlib.import_module('model.clip.model'),
        make_loss=importlib.import_module('loss.make_loss'),
        softmax_loss=importlib.import_module('loss.softmax_loss'),
        triplet_loss=importlib.import_module('loss.triplet_loss'),
        supcon=importlib.import_module('loss.supcontrast'))

    def load_clip_to_cpu(backbone_name, h_resolution, w_resolution,
                         vision_stride_size):
        clip = official.clip_model.build_model(
            dict(clip_state_dict), h_resolution, w_resolution,
            vision_stride_size)
        clip.to = lambda *args, **kwargs: clip
        return clip

    tokenize = official.model.clip.tokenize
    official.model.load_clip_to_cpu = load_clip_to_cpu
    official.model.clip.tokenize = (lambda *args, **kwargs: tokenize(
        *args, **kwargs).as_subclass(_StayOnCPU))
    official.make_loss.CenterLoss = lambda **kwargs: None
    official.softmax_loss.CrossEntropyLabelSmooth.__init__.__defaults__ = (
        0.1, False)
    return official


def official_clipreid_cfg(repo: str, sie: bool) -> SimpleNamespace:
    """Their configs/person/vit_clipreid.yml over config/defaults.py, with
    SIE as their README's SIE run (``SIE_CAMERA True SIE_COE 1.0``)."""
    import yaml
    with open(osp.join(repo, 'configs', 'person', 'vit_clipreid.yml')) as f:
        yml = yaml.safe_load(f)
    model, inp = yml['MODEL'], yml['INPUT']
    return SimpleNamespace(
        MODEL=SimpleNamespace(
            NAME=model['NAME'],
            COS_LAYER=False,
            NECK='bnneck',
            SIE_COE=1.0 if sie else 3.0,
            STRIDE_SIZE=model['STRIDE_SIZE'],
            SIE_CAMERA=sie,
            SIE_VIEW=False,
            METRIC_LOSS_TYPE=model['METRIC_LOSS_TYPE'],
            NO_MARGIN=False,
            IF_LABELSMOOTH=model['IF_LABELSMOOTH'],
            ID_LOSS_WEIGHT=model['ID_LOSS_WEIGHT'],
            TRIPLET_LOSS_WEIGHT=model['TRIPLET_LOSS_WEIGHT'],
            I2T_LOSS_WEIGHT=model['I2T_LOSS_WEIGHT']),
        INPUT=SimpleNamespace(
            SIZE_TRAIN=inp['SIZE_TRAIN'],
            PIXEL_MEAN=inp['PIXEL_MEAN'],
            PIXEL_STD=inp['PIXEL_STD']),
        TEST=SimpleNamespace(NECK_FEAT=yml['TEST']['NECK_FEAT']),
        DATASETS=SimpleNamespace(NAMES='market1501'),
        DATALOADER=SimpleNamespace(SAMPLER=yml['DATALOADER']['SAMPLER']),
        SOLVER=SimpleNamespace(MARGIN=0.3))


def verify_clipreid(args) -> int:
    """Compare mmtfclip's CLIP-ReID with the authors' code (see main)."""
    torch.manual_seed(args.seed)
    config = args.config or osp.join(REPO, 'configs', 'clipreid_market1501.py')
    spec = importlib.util.spec_from_file_location('clipreid_converter',
                                                  CLIPREID_CONVERTER)
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)
    # A random CLIP ViT-B/16 in OpenAI's layout: their model hard-codes
    # 12 image blocks of width 768 and prompt tokens of width 512; one text
    # block keeps it quick; the tokenizer needs the 49408-token vocabulary.
    clip_sd = make_tiny_clip_state_dict(
        width=768,
        layers=12,
        heads=12,
        patch_size=16,
        grid=14,
        embed_dim=512,
        text_width=512,
        text_layers=1,
        text_heads=8,
        vocab_size=49408,
        seed=args.seed)
    official = import_official_clipreid(args.official_repo, clip_sd)
    cfg = official_clipreid_cfg(args.official_repo, sie=True)
    assert tuple(cfg.INPUT.PIXEL_MEAN) == HALF == tuple(cfg.INPUT.PIXEL_STD)
    theirs = official.model.build_transformer(MARKET_IDS, MARKET_CAMS, 1,
                                              cfg).float()
    loss_fn, _ = official.make_loss.make_loss(cfg, num_classes=MARKET_IDS)
    supcon = official.supcon.SupConLoss('cpu')

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        converted = converter.convert(theirs.state_dict(),
                                      clip_sd['token_embedding.weight'])
        ckpt = osp.join(tmp, 'converted.pth')
        torch.save(dict(state_dict=converted), ckpt)
        ours = init_model(
            config,
            ckpt,
            device='cpu',
            cfg_options={
                'model.backbone.num_cams':
                MARKET_CAMS,
                'model.backbone.sie_coef':
                cfg.MODEL.SIE_COE,
                'model.text_encoder.pretrained':
                None,
                # The text tower of the random CLIP: one block.
                'model.text_encoder.arch':
                dict(
                    _delete_=True,
                    width=512,
                    layers=1,
                    heads=8,
                    context_length=77,
                    vocab_size=49408,
                    output_dim=512),
            })

    gen = torch.Generator().manual_seed(args.seed)
    preprocess = ours.data_preprocessor
    batch = args.ids_per_batch * args.seqs_per_id
    labels = torch.randperm(
        MARKET_IDS,
        generator=gen)[:args.ids_per_batch].repeat_interleave(args.seqs_per_id)
    cams = torch.randint(0, MARKET_CAMS, (batch, ), generator=gen)
    raw = frames(gen, batch, 1)  # images: tracklets of one frame
    x = preprocess(dict(inputs=raw), False)['inputs']
    mean = torch.tensor(HALF).view(3, 1, 1)
    their_x = (raw[:, 0].float() / 255 - mean) / torch.tensor(HALF).view(
        3, 1, 1)
    results.append(('input normalisation (mean/std 0.5)', their_x, x[:, 0]))
    theirs.eval()
    ours.eval()

    # Stage 1: image features (no SIE), text features, the two losses and
    # the gradient of the prompt tokens.
    with torch.no_grad():
        img_theirs = theirs(their_x, labels, get_image=True)
        img_ours = ours.extract_clip_feat(x)
    results.append(
        ('stage-1 image feature (get_image=True)', img_theirs, img_ours))
    text_theirs = theirs(label=labels, get_text=True)
    i2t_theirs = supcon(img_theirs, text_theirs, labels, labels)
    t2i_theirs = supcon(text_theirs, img_theirs, labels, labels)
    (i2t_theirs + t2i_theirs).backward()
    ours.prompt_learner.requires_grad_(True)
    text_ours = ours.text_features(labels)
    stage1 = ours.prompt_loss(img_ours, labels)
    sum(stage1.values()).backward()
    results.append(('stage-1 text features (get_text=True)',
                    text_theirs.detach(), text_ours.detach()))
    results.append(('stage-1 loss i2t', i2t_theirs.detach(),
                    stage1['loss_i2t_prompt'].detach()))
    results.append(('stage-1 loss t2i', t2i_theirs.detach(),
                    stage1['loss_t2i_prompt'].detach()))
    # Gradients relative to their largest magnitude, as the stage-2 ones.
    grad_theirs = theirs.prompt_learner.cls_ctx.grad
    grad_max = grad_theirs.abs().max()
    results.append(
        ('stage-1 prompt-token gradient (rel. to max)', grad_theirs / grad_max,
         ours.prompt_learner.cls_ctx.grad / grad_max))
    ours.prompt_learner.requires_grad_(False)
    theirs.zero_grad()

    # Stage 2: the text features of every identity (their loop, 64 at a
    # time), then the losses and gradients of one P x K batch.
    with torch.no_grad():
        text_all = torch.cat([
            theirs(label=chunk, get_text=True)
            for chunk in torch.arange(MARKET_IDS).split(64)
        ])
        memory = ours.build_text_memory()
    results.append(
        (f'stage-2 text features [{MARKET_IDS}, 512]', text_all, memory))
    theirs.train()
    ours.train()
    disable_dropout(theirs)
    disable_dropout(ours)
    score, feat, image_features = theirs(
        x=their_x, label=labels, cam_label=cams)
    logits = image_features @ text_all.t()
    loss_theirs = loss_fn(score, feat, labels, cams, logits)
    xent = official.softmax_loss.CrossEntropyLabelSmooth(
        num_classes=MARKET_IDS)
    triplet = official.triplet_loss.TripletLoss(cfg.SOLVER.MARGIN)
    with torch.no_grad():
        terms_theirs = dict(
            loss_id=cfg.MODEL.ID_LOSS_WEIGHT *
            sum(xent(s, labels) for s in score),
            loss_triplet=cfg.MODEL.TRIPLET_LOSS_WEIGHT *
            sum(triplet(f, labels)[0] for f in feat),
            loss_i2t=cfg.MODEL.I2T_LOSS_WEIGHT * xent(logits, labels))
    losses = ours(x, samples_for(labels.tolist(), cams.tolist()), mode='loss')
    loss_ours = sum(v for k, v in losses.items() if k.startswith('loss'))
    for key, value in terms_theirs.items():
        results.append((f'stage-2 {key}', value, losses[key].detach()))
    results.append(
        ('stage-2 total loss', loss_theirs.detach(), loss_ours.detach()))
    loss_theirs.backward()
    loss_ours.backward()
    our_params = dict(ours.named_parameters())
    pairs = []
    for name, param in theirs.named_parameters():
        if param.grad is None or name.startswith('prompt_learner.'):
            continue
        pairs.append((converter.map_key(name), param.grad,
                      our_params[converter.map_key(name)].grad))
    grad_diff = max((g1 - g2).abs().max().item() for _, g1, g2 in pairs)
    grad_scale = max(g1.abs().max().item() for _, g1, _ in pairs)
    worst = max(pairs, key=lambda p: (p[1] - p[2]).abs().max().item())

    # Test embedding: eval mode, with the cameras (SIE).
    theirs.eval()
    ours.eval()
    with torch.no_grad():
        emb_theirs = theirs(their_x, cam_label=cams)
        emb_ours = ours(
            x, samples_for(labels.tolist(), cams.tolist()), mode='tensor')
    results.append(
        (f'test embedding {list(emb_ours.shape)}', emb_theirs, emb_ours))

    print(f'\nmmtfclip vs the authors\' CLIP-ReID ({args.official_repo}), '
          f'float32, CPU, Market-1501 settings ({MARKET_IDS} ids, '
          f'{MARKET_CAMS} cams, SIE x{cfg.MODEL.SIE_COE}, '
          f'{IMG_SIZE[0]}x{IMG_SIZE[1]}), seed {args.seed}')
    print(f'{"check":<46} {"max |diff|":>12} {"max |value|":>12}')
    failed = False
    for name, a, b in results:
        diff = (a.double() - b.double()).abs().max().item()
        scale = a.double().abs().max().item()
        failed |= diff > args.atol
        print(f'{name:<46} {diff:12.3e} {scale:12.3e}')
    relative = grad_diff / grad_scale
    failed |= relative > args.atol
    print(f'{"stage-2 gradients, " + str(len(pairs)) + " weights (rel.)":<46} '
          f'{relative:12.3e} {grad_scale:12.3e}  (worst: {worst[0]})')
    print('PASSED' if not failed else f'FAILED (atol {args.atol})')
    return int(failed)


def main() -> int:
    args = parse_args()
    if args.method == 'clipreid':
        return verify_clipreid(args)
    args.config = args.config or osp.join(REPO, 'configs', 'tfclip_mars.py')
    torch.manual_seed(args.seed)
    official = import_official(args.official_repo)
    spec = importlib.util.spec_from_file_location('tfclip_converter',
                                                  CONVERTER)
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)

    # A random CLIP ViT-B/16 in OpenAI's layout (12 blocks, which their
    # encoder's forward hard-codes); the text tower is only there because
    # their CLIP builder reads its sizes.
    clip_sd = make_tiny_clip_state_dict(
        width=768,
        layers=12,
        heads=12,
        patch_size=16,
        grid=14,
        embed_dim=512,
        text_width=64,
        text_heads=1,
        vocab_size=100,
        seed=args.seed)
    patch_official(official, clip_sd)
    cfg = official_cfg(args.official_repo)
    assert cfg.INPUT.SEQ_LEN == NUM_FRAMES and cfg.MODEL.SIE_CAMERA
    theirs = official.model.build_transformer(NUM_IDS, NUM_CAMS, 1, cfg)
    theirs = theirs.float()
    loss_fn, _ = official.make_loss.make_loss(cfg, num_classes=NUM_IDS)
    xent_frame = official.softmax_loss.CrossEntropyLabelSmooth(
        num_classes=NUM_IDS)

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        converted = converter.convert(theirs.state_dict())
        ckpt = osp.join(tmp, 'converted.pth')
        torch.save(
            dict(state_dict=converted, meta=dict(num_frames=NUM_FRAMES)), ckpt)
        ours = init_model(args.config, ckpt, device='cpu')

        # Positional-embedding resize: CLIPViT's loader vs their builder.
        clip_file = save_tiny_clip(
            osp.join(tmp, 'clip.pt'),
            fmt='openai_state_dict',
            state_dict=clip_sd,
            heads=12,
            text_heads=1)
        vit = CLIPViT(
            arch=dict(
                width=768, layers=12, heads=12, patch_size=16, output_dim=512),
            img_size=IMG_SIZE)
        vit.load_clip_weights(clip_file)
        results.append(('positional embedding resize [129, 768]',
                        theirs.image_encoder.positional_embedding.detach(),
                        vit.positional_embedding.detach()))

    gen = torch.Generator().manual_seed(args.seed)
    preprocess = ours.data_preprocessor

    # Normalisation: our data preprocessor vs their ToTensor + Normalize.
    raw = frames(gen, args.num_seqs, NUM_FRAMES)
    x = preprocess(dict(inputs=raw), False)['inputs']
    results.append(('input normalisation', their_normalise(raw), x))

    # Test embedding.
    cams = torch.randint(0, NUM_CAMS, (args.num_seqs, ), generator=gen)
    theirs.eval()
    ours.eval()
    with torch.no_grad():
        emb_theirs = theirs(x, cam_label=cams)
        emb_ours = ours(
            x, samples_for([0] * len(cams), cams.tolist()), mode='tensor')
    results.append(
        (f'test embedding {list(emb_ours.shape)}', emb_theirs, emb_ours))

    # Dense test embedding of one tracklet.
    raw = frames(gen, 1, args.dense_clips, NUM_FRAMES)
    x_dense = preprocess(dict(inputs=raw), False)['inputs']
    cam = int(torch.randint(0, NUM_CAMS, (1, ), generator=gen))
    with torch.no_grad():
        dense_theirs = theirs(
            x_dense[0], cam_label=torch.full((args.dense_clips, ), cam)).mean(
                0, keepdim=True)
        dense_ours = ours(x_dense, samples_for([0], [cam]), mode='tensor')
    results.append((f'dense embedding ({args.dense_clips} clips averaged)',
                    dense_theirs, dense_ours))

    # CLIP-Memory feature of clips.
    with torch.no_grad():
        mem_theirs = theirs(x, get_image=True)
        mem_ours = ours.extract_clip_feat(x)
    results.append(
        ('CLIP-Memory clip feature (get_image=True)', mem_theirs, mem_ours))

    # Training loss for one P x K batch and the same memory.
    labels = torch.randperm(
        NUM_IDS,
        generator=gen)[:args.ids_per_batch].repeat_interleave(args.seqs_per_id)
    batch = len(labels)
    raw = frames(gen, batch, NUM_FRAMES)
    x = preprocess(dict(inputs=raw), False)['inputs']
    cams = torch.randint(0, NUM_CAMS, (batch, ), generator=gen)
    # A memory like the hook's: the batch identities' entries are their
    # sequences' clip features, the others random at the same scale.
    with torch.no_grad():
        clip_feats = ours.extract_clip_feat(x)
    memory = torch.randn(NUM_IDS, 512, generator=gen) * clip_feats.std()
    memory.index_reduce_(0, labels, clip_feats, 'mean', include_self=False)
    ours.head.set_memory(memory)
    theirs.train()
    ours.train()
    disable_dropout(theirs)
    disable_dropout(ours)

    score, feat, logits = theirs(
        x=x, cam_label=cams, text_features2=memory.clone())
    loss_theirs = loss_fn(score[0:3], feat, labels, cams, logits)
    frame_loss = xent_frame(score[3], labels.repeat_interleave(NUM_FRAMES))
    loss_theirs = loss_theirs + frame_loss / NUM_FRAMES
    xent = official.softmax_loss.CrossEntropyLabelSmooth(num_classes=NUM_IDS)
    triplet = official.triplet_loss.TripletLoss(cfg.SOLVER.MARGIN)
    with torch.no_grad():
        terms_theirs = dict(
            loss_id=cfg.MODEL.ID_LOSS_WEIGHT *
            sum(xent(s, labels) for s in score[0:3]),
            loss_triplet=cfg.MODEL.TRIPLET_LOSS_WEIGHT *
            sum(triplet(f, labels)[0] for f in feat),
            loss_i2t=cfg.MODEL.I2T_LOSS_WEIGHT * xent(logits, labels),
            loss_frame=frame_loss / NUM_FRAMES)

    losses = ours(x, samples_for(labels.tolist(), cams.tolist()), mode='loss')
    loss_ours = sum(v for k, v in losses.items() if k.startswith('loss'))
    for key, value in terms_theirs.items():
        results.append((key, value, losses[key].detach()))
    results.append(
        ('total training loss', loss_theirs.detach(), loss_ours.detach()))
    results.append(
        ('memory-logit accuracy (%)',
         (logits.argmax(1) == labels).float().mean() * 100, losses['acc_i2t']))

    loss_theirs.backward()
    loss_ours.backward()
    pairs = grad_pairs(theirs, ours, converter)
    grad_diff = max((g1 - g2).abs().max().item() for _, g1, g2 in pairs)
    grad_scale = max(g1.abs().max().item() for _, g1, _ in pairs)
    worst = max(pairs, key=lambda p: (p[1] - p[2]).abs().max().item())

    print(f'\nmmtfclip vs the authors\' TF-CLIP ({args.official_repo}), '
          f'float32, CPU, MARS settings ({NUM_IDS} ids, {NUM_CAMS} cams, '
          f'T={NUM_FRAMES}, {IMG_SIZE[0]}x{IMG_SIZE[1]}), seed {args.seed}')
    print(f'{"check":<46} {"max |diff|":>12} {"max |value|":>12}')
    failed = False
    for name, a, b in results:
        diff = (a.double() - b.double()).abs().max().item()
        scale = a.double().abs().max().item()
        failed |= diff > args.atol
        print(f'{name:<46} {diff:12.3e} {scale:12.3e}')
    relative = grad_diff / grad_scale
    failed |= relative > args.atol
    print(f'{"gradients, " + str(len(pairs)) + " weights (rel. to max)":<46} '
          f'{relative:12.3e} {grad_scale:12.3e}  (worst: {worst[0]})')
    print('PASSED' if not failed else f'FAILED (atol {args.atol})')
    return int(failed)


if __name__ == '__main__':
    sys.exit(main())
