"""Packaged model weights (``*.pt``) and their ``manifest.json``; loaded by :mod:`bayes_fer.pretrained`."""
