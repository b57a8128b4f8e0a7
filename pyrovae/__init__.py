"""pyrovae: variational autoencoders written as Pyro models and guides."""
