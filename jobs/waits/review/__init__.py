"""The `review` kind of wait: `kind` (create, cancel, tick), `models`, `services` (deciding),
`selectors`, `serializers`, `views` and `urls` (the Reviews API), `admin` (the Reviews page)."""
