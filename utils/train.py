"""Training loops for the book's models (denoising score matching at one or many noise levels).

Everything here is seeded, runs on the CPU in seconds for the book's sizes, and returns the
list of training losses so a chapter can plot them.
"""
from __future__ import annotations
