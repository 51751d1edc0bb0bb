"""Privacy masking: detectors, tracking and the masks applied before any frame leaves."""
