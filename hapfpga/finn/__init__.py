"""Adapter to QONNX / finn-plus. The only package that imports ``finn``; imports are lazy."""
