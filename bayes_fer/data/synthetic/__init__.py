"""Synthetic compound facial expressions: the embedded dataset that needs no files."""
from bayes_fer.data.synthetic.actions import ACTION_UNITS, EMOTION_AU, EMOTIONS
from bayes_fer.data.synthetic.dataset import SyntheticConfig, SyntheticFaces
from bayes_fer.data.synthetic.render import SceneConfig, render_face

__all__ = ["ACTION_UNITS", "EMOTIONS", "EMOTION_AU", "SceneConfig", "SyntheticConfig", "SyntheticFaces", "render_face"]
