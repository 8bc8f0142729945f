"""One module per synthesized file; registry.VIEWS maps mount paths to them."""
