# Entry config: CLIP-ReID on Market-1501 (see configs/clipreid/).
_base_ = [
    './clipreid/clipreid_vit-b16-clip-openai-pre_1xb64-60e_market1501.py'
]
