"""Building blocks of the synthetic music generator: theory, styles, instruments, composer, renderer."""
