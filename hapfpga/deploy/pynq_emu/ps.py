"""``pynq.ps`` of the stand-in: the PS clocks (FINN's driver sets ``Clocks.fclk0_mhz``)."""

from __future__ import annotations

__all__ = ["Clocks"]


class Clocks:
    """The programmable logic clocks; on the emulated board they only record what the driver set."""

    fclk0_mhz: float = 100.0
    fclk1_mhz: float = 100.0
    fclk2_mhz: float = 100.0
    fclk3_mhz: float = 100.0
