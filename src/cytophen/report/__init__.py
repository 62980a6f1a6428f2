"""cytophen.report."""
