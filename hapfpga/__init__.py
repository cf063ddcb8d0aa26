"""hapfpga: hardware-aware quantisation, pruning and folding for FINN dataflow accelerators.

The core (``types``, ``boards``, ``estimate``, ``folding``, pruning plans) is pure Python + numpy;
adapters to Brevitas/torch, QONNX/FINN and PYNQ import their heavy dependencies lazily.
"""

from .boards import BoardSpec, list_boards, load_board
from .errors import (
    ConfigError,
    DataError,
    HapError,
    InfeasibleError,
    ToolMissingError,
    UnsupportedLayerError,
    VerificationError,
)
from .types import FoldingPlan, LayerCost, LayerFolding, QuantSpec, Resources

__version__ = "0.1.0"

__all__ = [
    "BoardSpec",
    "ConfigError",
    "DataError",
    "FoldingPlan",
    "HapError",
    "InfeasibleError",
    "LayerCost",
    "LayerFolding",
    "QuantSpec",
    "Resources",
    "ToolMissingError",
    "UnsupportedLayerError",
    "VerificationError",
    "list_boards",
    "load_board",
    "__version__",
]
