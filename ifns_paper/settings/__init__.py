"""Settings package: ``base`` (shared), ``local`` (default), ``test``, ``production``."""
