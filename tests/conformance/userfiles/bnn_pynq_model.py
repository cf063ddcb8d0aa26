"""A user's model file, as a FINN user would write it: the canonical bnn_pynq networks of Brevitas' own examples
(``brevitas_examples.bnn_pynq``, the LFC/SFC/TFC/CNV family every FINN tutorial uses, and the residual
``resnet18_4w4a``), untrained, exactly as ``model_with_cfg`` builds them. Nobody on the hapfpga project wrote
these networks: ``hapfpga run`` gets them through ``model.name: tests/conformance/userfiles/bnn_pynq_model.py:make``
with ``model.options: {cfg: tfc_1w1a}``.
"""

from brevitas_examples.bnn_pynq.models import model_with_cfg


def make(input_shape, num_classes, *, cfg):
    """The bnn_pynq network of configuration ``cfg`` (e.g. ``tfc_1w1a``, ``cnv_2w2a``, ``resnet18_4w4a``)."""
    model, ini = model_with_cfg(cfg, pretrained=False)
    classes = ini.getint("MODEL", "NUM_CLASSES")
    if classes != num_classes:
        raise ValueError(f"{cfg} has {classes} outputs but the data has {num_classes} classes")
    return model
