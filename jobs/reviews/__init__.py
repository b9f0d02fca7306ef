"""The Reviews API and admin page: reading and deciding the reviews `review` steps ask for."""
