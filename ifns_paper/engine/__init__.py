"""The Django-free engine: contracts and pure logic, no I/O, no wall clock.

Nothing under this package may import Django, Celery or touch the network or
the file system; time is passed in. ``tests/engine/test_layering.py`` checks it.
"""
