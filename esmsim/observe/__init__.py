"""Observation: the recorder the model writes to, and the tables a finished run is read from."""
