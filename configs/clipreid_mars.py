# Entry config: CLIP-ReID on MARS, T = 8 frames averaged (configs/clipreid/).
_base_ = ['./clipreid/clipreid_vit-b16-clip-openai-pre_1xb16-t8-80e_mars.py']
