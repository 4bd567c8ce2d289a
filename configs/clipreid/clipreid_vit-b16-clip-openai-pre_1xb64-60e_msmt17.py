# CLIP-ReID on MSMT17 (V1 or V2): 1,041 training identities (list_train +
# list_val), 15 cameras, the authors' recipe as for Market-1501.
_base_ = [
    '../_base_/models/clipreid_vit-b16.py', '../_base_/datasets/msmt17.py',
    '../_base_/schedules/clipreid_adam-5e-6_60e.py',
    '../_base_/default_runtime.py'
]

model = dict(head=dict(num_classes=1041))
