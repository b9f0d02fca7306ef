"""The `event` kind of wait (the `wait_for_event` step): `kind` (create, cancel, tick),
`models` (events received, entities waiting), `services` (sending and matching),
`serializers`, `views` and `urls` (`/api/v1/events`), `admin`."""
