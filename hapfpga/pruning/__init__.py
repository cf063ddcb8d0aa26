"""Hardware-aware structured pruning co-optimised with folding.

Pure core: :mod:`.plan` (channel counts, fold-aware rounding, scaling FINN layer specs), :mod:`.config`.
Torch adapters (lazy heavy imports): :mod:`.apply`, :mod:`.importance`, :mod:`.sensitivity`, :mod:`.finetune`,
:mod:`.unstructured`; search loops: :mod:`.search`.
"""
