"""Pictures: PNG grids and curves, the pictures of a run, and the semi-supervised models' figures."""
