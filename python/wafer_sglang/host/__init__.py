"""The serving host: doctor and the ROCm stack pin."""
