"""vidgru: surveillance video anomaly detection with CNN features and a GRU temporal model, on Ray."""

__version__ = "0.1.0"
