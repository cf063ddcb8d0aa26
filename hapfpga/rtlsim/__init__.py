"""Open RTL simulation of FINN dataflow designs with Verilator (issue 7)."""
