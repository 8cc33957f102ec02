"""Lanes, lane policies, risk envelopes, paper sessions and their lifecycle,
the model/strategy registry references, the change log and the registry export."""
