"""Text metrics: everything derives from the mean cross-entropy in nats per character."""

from __future__ import annotations

import math


def bits_per_char(nats: float) -> float:
    """Nats per character divided by ln 2.

    Examples:
        >>> round(bits_per_char(math.log(2)), 12)
        1.0
    """
    return nats / math.log(2)


def perplexity(nats: float) -> float:
    """exp(nats per character): the effective number of equally likely next characters.

    Examples:
        >>> round(perplexity(math.log(65)), 9)
        65.0
    """
    return math.exp(nats)
