"""The `delay` kind of wait (the `delay` step): `kind` (create, cancel, tick), `models`."""
