"""Live sources of papers, published to the ``papers`` topic like a papers file."""
