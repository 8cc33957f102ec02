"""A user-supplied MSI model, loaded by dotted path in tests."""

import numpy as np


def contrarian(frame):
    """Sell strength, buy weakness: minus the sign of the last return, when volatility is known."""
    return np.where(frame.vol > 0, -np.sign(frame.ret), 0.0)


def broken(frame):
    """Returns the wrong number of signals."""
    return np.zeros(3)
