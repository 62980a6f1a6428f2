"""Reading and writing FCS files."""
