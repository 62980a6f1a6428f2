"""cytophen.clinical."""
