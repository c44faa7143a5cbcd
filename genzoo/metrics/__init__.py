"""Evaluation metrics shared by the families (numpy; the classifier uses torch)."""

from genzoo.metrics.distances import (frechet_distance, gaussian_stats, inception_score,
                                      precision_recall)
from genzoo.metrics.text import bits_per_char, perplexity

__all__ = ["bits_per_char", "frechet_distance", "gaussian_stats", "inception_score",
           "perplexity", "precision_recall"]
