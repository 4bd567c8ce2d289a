# CLIP-ReID on Market-1501: 751 training identities, 6 cameras, the
# authors' recipe (configs/person/vit_clipreid.yml): SIE off, stride 16,
# stage 1 of 120 epochs, stage 2 of 60 epochs, 64 images per batch.
_base_ = [
    '../_base_/models/clipreid_vit-b16.py', '../_base_/datasets/market1501.py',
    '../_base_/schedules/clipreid_adam-5e-6_60e.py',
    '../_base_/default_runtime.py'
]

model = dict(head=dict(num_classes=751))
