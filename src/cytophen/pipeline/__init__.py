"""cytophen.pipeline."""
