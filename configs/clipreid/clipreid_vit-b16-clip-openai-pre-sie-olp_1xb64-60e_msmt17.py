# CLIP-ReID + SIE + OLP on MSMT17, the authors' README command:
# MODEL.SIE_CAMERA True, MODEL.SIE_COE 1.0, MODEL.STRIDE_SIZE [12, 12]
# (overlapping patches: 21 x 10 of 16 pixels at 256 x 128).
_base_ = ['./clipreid_vit-b16-clip-openai-pre_1xb64-60e_msmt17.py']

model = dict(backbone=dict(num_cams=15, sie_coef=1.0, stride_size=12))
