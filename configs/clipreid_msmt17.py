# Entry config: CLIP-ReID on MSMT17 (see configs/clipreid/).
_base_ = ['./clipreid/clipreid_vit-b16-clip-openai-pre_1xb64-60e_msmt17.py']
