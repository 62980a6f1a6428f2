"""cytophen.simulate."""
