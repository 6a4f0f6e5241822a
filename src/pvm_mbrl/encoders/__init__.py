"""Image encoders behind one interface: the from-scratch CNN and (later) pre-trained vision models."""
