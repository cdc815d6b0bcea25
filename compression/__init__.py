"""Compression Explorer backend: measure what pruning, quantization and distillation cost and buy.

Never imports streamlit; every page of the app is a call into this package.
"""
